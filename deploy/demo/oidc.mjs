// The identity provider of `docker compose --profile demo up`: oauth2-mock-server on port 8090,
// with the issuer http://localhost:8090 (the browser and Slipway, which shares this container's
// network, both reach it there). Every sign-in is the demo user, in the groups that the demo's
// SLIPWAY_OIDC_ROLE_MAP maps to all three roles. For trying Slipway out only: it signs anyone in.
import { OAuth2Server } from 'oauth2-mock-server';

const port = Number(process.env.PORT || 8090);
const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');
await server.start(port, '0.0.0.0');
server.issuer.url = `http://localhost:${port}`;
server.service.on('beforeTokenSigning', (token) => {
  Object.assign(token.payload, {
    sub: 'demo-user',
    email: 'demo@example.com',
    name: 'Demo User',
    groups: ['demo-developers', 'demo-platform-team', 'demo-admins'],
  });
});
console.log(`mock identity provider at ${server.issuer.url}`);
