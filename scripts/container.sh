#!/usr/bin/env bash
# Builds the authbench container image (Containerfile: a static musl binary FROM scratch,
# CA certificates, a non-root user), prints its size, and proves it: the image is run with
# podman when this machine may run containers; where it may not (a sandbox, a CI runner
# without user namespaces), its filesystem is exported from the image archive and the
# binary is run from it, under chroot as the image's user when possible: `--version`, then
# a short `run` against its own in-process reference server.
#
#   scripts/container.sh                  # build, print the size, prove it
#   IMAGE=registry.example/authbench:0.1.0 scripts/container.sh
#
# Installs what it needs when missing (as root, with apt): the musl target (rustup),
# musl-tools (ring's C code), podman (Debian's package; buildah is used if present
# instead). Outputs go to target/container/: the build context, the image archive
# (authbench-image.tar, OCI) and the exported filesystem.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET=x86_64-unknown-linux-musl
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
IMAGE=${IMAGE:-localhost/authbench:$VERSION}
OUT=$ROOT/target/container
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac

fail() { echo "error: container: $*" >&2; exit 1; }
apt_install() {
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
        || fail "$1 is missing; install Debian's '$1' (apt-get install $1)"
    echo "== installing $1"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null) \
        || fail "could not install $*"
}

# ---- tools --------------------------------------------------------------------------
rustup target list --installed 2>/dev/null | grep -qx "$TARGET" || rustup target add "$TARGET"
command -v musl-gcc >/dev/null 2>&1 || apt_install musl-tools
if command -v podman >/dev/null 2>&1; then
    ENGINE=podman
elif command -v buildah >/dev/null 2>&1; then
    ENGINE=buildah
else
    apt_install podman
    ENGINE=podman
fi
[ -f /etc/ssl/certs/ca-certificates.crt ] || apt_install ca-certificates

# ---- the static binary ----------------------------------------------------------------
echo "== cargo build --release --target $TARGET (static, stripped)"
CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=true \
    cargo build --quiet --release --locked --target "$TARGET"
BIN=$TARGET_DIR/$TARGET/release/authbench
file_info=$(od -An -c -N4 "$BIN" | tr -d ' ')
[ "$file_info" = '177ELF' ] || fail "$BIN is not an ELF binary"
if readelf -l "$BIN" 2>/dev/null | grep -q 'Requesting program interpreter'; then
    fail "$BIN is dynamically linked: it would not start FROM scratch"
fi

# ---- the build context ----------------------------------------------------------------
CTX=$OUT/context
rm -rf "$CTX" && mkdir -p "$CTX/rootfs/usr/local/bin" "$CTX/rootfs/etc/ssl/certs" "$CTX/home/authbench"
cp "$BIN" "$CTX/rootfs/usr/local/bin/authbench"
cp /etc/ssl/certs/ca-certificates.crt "$CTX/rootfs/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nauthbench:x:65532:65532:authbench:/home/authbench:/sbin/nologin\n' >"$CTX/rootfs/etc/passwd"
printf 'root:x:0:\nauthbench:x:65532:\n' >"$CTX/rootfs/etc/group"
cp Containerfile "$CTX/Containerfile"

# ---- the image ------------------------------------------------------------------------
echo "== $ENGINE build -t $IMAGE"
if [ "$ENGINE" = podman ]; then
    podman build --quiet -f "$CTX/Containerfile" -t "$IMAGE" "$CTX" >/dev/null
    SIZE=$(podman image inspect --format '{{.Size}}' "$IMAGE")
else
    buildah bud --quiet -f "$CTX/Containerfile" -t "$IMAGE" "$CTX" >/dev/null
    SIZE=$(buildah inspect --type image --format '{{.Size}}' "$IMAGE" 2>/dev/null || echo 0)
fi
ARCHIVE=$OUT/authbench-image.tar
rm -f "$ARCHIVE"
$ENGINE push --quiet "$IMAGE" "oci-archive:$ARCHIVE" 2>/dev/null \
    || podman save --quiet --format oci-archive -o "$ARCHIVE" "$IMAGE"
COMPRESSED=$(stat -c %s "$ARCHIVE")
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1000000 }'; }
echo "image: $IMAGE, $(mb "$SIZE") ($(mb "$COMPRESSED") compressed, as a registry stores it); binary $(mb "$(stat -c %s "$BIN")")"
printf '%s\n' "$SIZE" >"$OUT/size"

# ---- the proof ------------------------------------------------------------------------
# Its filesystem, from the archive's layers (what any runtime would unpack).
FS=$OUT/rootfs
rm -rf "$FS" && mkdir -p "$FS"
python3 - "$ARCHIVE" "$FS" <<'PY'
import json, sys, tarfile
archive, dest = sys.argv[1], sys.argv[2]
with tarfile.open(archive) as t:
    blob = lambda d: t.extractfile("blobs/" + d.replace(":", "/"))
    index = json.load(t.extractfile("index.json"))
    manifest = json.load(blob(index["manifests"][0]["digest"]))
    config = json.load(blob(manifest["config"]["digest"]))
    for layer in manifest["layers"]:
        with tarfile.open(fileobj=blob(layer["digest"]), mode="r:*") as l:
            l.extractall(dest, numeric_owner=True)
    c = config["config"]
    assert c.get("Entrypoint") == ["authbench"], c.get("Entrypoint")
    assert c.get("User") == "65532:65532", c.get("User")
    print("config: entrypoint %s, user %s, workdir %s" % (c["Entrypoint"], c["User"], c.get("WorkingDir")))
PY
for f in usr/local/bin/authbench etc/ssl/certs/ca-certificates.crt etc/passwd home/authbench; do
    [ -e "$FS/$f" ] || fail "the image has no /$f"
done

# Run the image if this machine may; otherwise its binary, from its exported filesystem:
# under chroot as the image's user (uid 65532) when root, else directly.
if [ "$ENGINE" = podman ] && podman run --rm --network host "$IMAGE" --version >/dev/null 2>&1; then
    MODE=podman
    REPORTS=/home/authbench/reports
    echo "== the image runs (podman run)"
elif [ "$(id -u)" = 0 ] && command -v chroot >/dev/null 2>&1; then
    MODE=chroot
    REPORTS=/home/authbench/reports
    echo "== containers cannot run here: the binary runs from the image's exported filesystem (chroot, uid 65532)"
else
    MODE=direct
    REPORTS=$FS/home/authbench/reports
    echo "== containers cannot run here: the binary runs from the image's exported filesystem"
fi
run_in_image() {
    case $MODE in
        podman) podman run --rm --network host "$IMAGE" "$@" ;;
        chroot) chroot --userspec=65532:65532 "$FS" /usr/local/bin/authbench "$@" ;;
        direct) "$FS/usr/local/bin/authbench" "$@" ;;
    esac
}
V=$(run_in_image --version)
echo "$V"
[ "$V" = "authbench $VERSION" ] || fail "--version printed '$V'"
run_in_image run --flows 10 --cost 4 --no-progress --out-dir "$REPORTS" | tee "$OUT/run.txt" \
    | grep -E '^(Success Rate|report):'
grep -q '^Success Rate: 100.00%$' "$OUT/run.txt" || fail "the run from the image did not reach 100%"
echo "container: OK"
