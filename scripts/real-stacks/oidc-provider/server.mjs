// oidc-provider's quick-start (new Provider(issuer, { clients }) then provider.listen) with one
// confidential client and the two features the scenario needs: the client_credentials grant
// and token introspection (RFC 7662). The library does all the auth: client authentication
// (client_secret_basic), token issuance, storage (its in-memory adapter) and introspection.
//
// Environment: PORT (the loopback port), CLIENT_ID and CLIENT_SECRET (the configured client).
import * as oidc from "oidc-provider";

const port = Number(process.env.PORT || 3000);
const issuer = `http://127.0.0.1:${port}`;

const provider = new oidc.Provider(issuer, {
  clients: [
    {
      client_id: process.env.CLIENT_ID || "authbench",
      client_secret: process.env.CLIENT_SECRET,
      grant_types: ["client_credentials"],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  scopes: ["api:read"],
  ttl: { ClientCredentials: 600 },
  features: {
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      // A confidential client may introspect the tokens issued to itself.
      allowedPolicy: async (ctx, client, token) => token.clientId === client.clientId,
    },
    devInteractions: { enabled: false },
  },
});

const server = provider.listen(port, "127.0.0.1", () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
