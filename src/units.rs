//! Value parsers for the quantities people type: counts (`10k`), durations (`1.5s`) and
//! rates (`100/s`). The lowest layer: plans, scenarios and every command import them
//! downward; they know nothing of clap.

use std::net::IpAddr;
use std::time::Duration;

/// The most local addresses `--source-addr` may list (a CIDR is expanded to its hosts).
pub const MAX_SOURCE_ADDRS: usize = 1024;

/// `127.0.0.2,127.0.0.3`, `127.0.0.0/29`, `::1`: local addresses, comma-separated, each an
/// address or a CIDR block (expanded to its host addresses), without duplicates.
pub fn parse_source_addrs(s: &str) -> Result<Vec<IpAddr>, String> {
    let mut out: Vec<IpAddr> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let hosts: Vec<IpAddr> = if part.contains('/') {
            let net: ipnet::IpNet = part
                .parse()
                .map_err(|_| format!("'{part}' is not an address block: use e.g. 127.0.0.0/29"))?;
            // A /32 (or /128) is its one address; otherwise the hosts, capped.
            match net.prefix_len() == net.max_prefix_len() {
                true => vec![net.addr()],
                false => net.hosts().take(MAX_SOURCE_ADDRS + 1).collect(),
            }
        } else {
            vec![part.parse().map_err(|_| {
                format!("'{part}' is not an IP address: use e.g. 127.0.0.2,127.0.0.3")
            })?]
        };
        for h in hosts {
            if !out.contains(&h) {
                out.push(h);
            }
        }
        if out.len() > MAX_SOURCE_ADDRS {
            return Err(format!("more than {MAX_SOURCE_ADDRS} source addresses"));
        }
    }
    match out.is_empty() {
        true => Err("no address given".into()),
        false => Ok(out),
    }
}

/// `100`, `2.5` flows per second (a trailing `/s` is accepted).
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let r: f64 = t
        .parse()
        .map_err(|_| format!("'{s}' is not a rate: use e.g. 100 or 100/s"))?;
    if !(r.is_finite() && r > 0.0 && r <= 10_000_000.0) {
        return Err(format!("'{s}' must be a rate above 0 (flows per second)"));
    }
    Ok(r)
}

/// `20`, `10k`, `2m` (×1000, ×1000000), `1_000`.
pub fn parse_count(s: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    let (num, mul) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1_000),
        Some('m' | 'M') => (&t[..t.len() - 1], 1_000_000),
        _ => (t.as_str(), 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a count: use e.g. 20, 10k, 1m"))?;
    let v = n
        .checked_mul(mul)
        .ok_or_else(|| format!("'{s}' is too large"))?;
    if v == 0 {
        return Err("must be at least 1".into());
    }
    Ok(v)
}

/// `30s`, `500ms`, `1.5s`, `2m`, `1h`, `250us`; a bare number is seconds. Written by hand
/// because humantime rejects fractions ("1.5s"), which people type for timeouts.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || format!("'{s}' is not a duration: use e.g. 30s, 500ms, 1.5s, 2m");
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit.trim() {
        "" | "s" | "sec" | "secs" => n,
        "ms" => n / 1e3,
        "us" | "µs" => n / 1e6,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 * 365.0 {
        return Err(format!("'{s}' must be a positive duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Like [`parse_duration`], and `0` (or `0s`, `0ms`) for none: for waits that may be
/// skipped.
pub fn parse_wait(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let digits = t.trim_end_matches(|c: char| c.is_ascii_alphabetic() || c == 'µ');
    if !digits.is_empty() && digits.chars().all(|c| c == '0' || c == '.') {
        return parse_duration(&t.replacen(digits, "1", 1)).map(|_| Duration::ZERO);
    }
    parse_duration(s)
}

/// A duration in whole milliseconds, saturating (for reports and messages).
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A size in bytes: `1048576`, `512k`/`512KiB` (×1024), `1m`/`1MiB`, `1g`/`1GiB`, and the
/// decimal `kB`, `MB`, `GB` (×1000). Case-insensitive; at least 1 byte.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size: use e.g. 1048576, 512k, 1MiB or 2GB"))?;
    let mul: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        u => {
            return Err(format!(
                "'{s}': unknown size unit '{u}': use k, MiB, MB, g, GiB or GB"
            ))
        }
    };
    let v = (n * mul).round();
    if !(1.0..=(u64::MAX as f64)).contains(&v) {
        return Err(format!("'{s}': a size is at least 1 byte"));
    }
    Ok(v as u64)
}

/// `1 MiB`, `512 KiB`, `1.5 GiB`, `300 B`: a size in binary units, for messages.
pub fn bytes_text(n: u64) -> String {
    const UNITS: [(&str, f64); 3] = [("GiB", 1073741824.0), ("MiB", 1048576.0), ("KiB", 1024.0)];
    for (u, m) in UNITS {
        if n as f64 >= m {
            let v = n as f64 / m;
            return if v.fract() == 0.0 {
                format!("{v:.0} {u}")
            } else {
                format!("{v:.1} {u}")
            };
        }
    }
    format!("{n} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_are_lists_or_blocks() {
        let v = |s: &str| {
            parse_source_addrs(s).map(|v| v.iter().map(|a| a.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(
            v("127.0.0.2, 127.0.0.3").unwrap(),
            ["127.0.0.2", "127.0.0.3"]
        );
        assert_eq!(v("127.0.0.0/30").unwrap(), ["127.0.0.1", "127.0.0.2"]);
        assert_eq!(v("127.0.0.5/32,127.0.0.5").unwrap(), ["127.0.0.5"]);
        assert_eq!(v("::1").unwrap(), ["::1"]);
        assert!(v("127.0.0.300").unwrap_err().contains("not an IP address"));
        assert!(v("127.0.0.0/33")
            .unwrap_err()
            .contains("not an address block"));
        assert!(v("10.0.0.0/8").unwrap_err().contains("more than 1024"));
        assert!(v(",").is_err());
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count("20"), Ok(20));
        assert_eq!(parse_count("10k"), Ok(10_000));
        assert_eq!(parse_count("1M"), Ok(1_000_000));
        assert_eq!(parse_count("1_000"), Ok(1000));
        assert!(parse_count("0").is_err());
        assert!(parse_count("-1").is_err());
        assert!(parse_count("k").is_err());
        assert!(parse_count("99999999999999999999k").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        for bad in ["", "s", "0s", "-1s", "1x", "1.2.3s", "inf"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn waits_may_be_zero() {
        assert_eq!(parse_wait("0"), Ok(Duration::ZERO));
        assert_eq!(parse_wait("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_wait("0ms"), Ok(Duration::ZERO));
        assert_eq!(parse_wait("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_wait("0parsecs").is_err());
        assert!(parse_wait("-1s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("512k"), Ok(512 * 1024));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("1.5m"), Ok(1_572_864));
        assert!(parse_size("0").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs")
            .unwrap_err()
            .contains("unknown size unit"));
        assert_eq!(bytes_text(1 << 20), "1 MiB");
        assert_eq!(bytes_text(1536), "1.5 KiB");
        assert_eq!(bytes_text(300), "300 B");
    }
}
