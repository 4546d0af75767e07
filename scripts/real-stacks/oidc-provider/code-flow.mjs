// oidc-provider's quick-start with one public client (a browser app or a native app: no
// secret, `token_endpoint_auth_method: "none"`) for the authorization code flow with PKCE
// (RFC 7636), and the library's own development interactions (its login form, which accepts
// any login, and its consent page). The library does all the auth: the authorization
// request, the interaction cookies and sessions, the grant, the code (single use), the PKCE
// check at the token endpoint, the ID token (RS256, signed with its development key) and
// userinfo.
//
// Environment: PORT (the loopback port), CLIENT_ID and REDIRECT_URI (the registered one; the
// scenario never follows it: the code is read from the redirect).
import * as oidc from "oidc-provider";

const port = Number(process.env.PORT || 3000);
const issuer = `http://127.0.0.1:${port}`;

const provider = new oidc.Provider(issuer, {
  clients: [
    {
      client_id: process.env.CLIENT_ID || "authbench-spa",
      grant_types: ["authorization_code"],
      response_types: ["code"],
      redirect_uris: [process.env.REDIRECT_URI || "http://127.0.0.1:9/cb"],
      token_endpoint_auth_method: "none",
    },
  ],
  features: {
    devInteractions: { enabled: true },
  },
});

const server = provider.listen(port, "127.0.0.1", () => {
  console.log(`oidc-provider (code flow) listening on ${issuer}`);
});
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
