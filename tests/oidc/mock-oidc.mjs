// The OpenID Connect provider for Slipway's tests: oauth2-mock-server on a free loopback port,
// plus a small control endpoint through which a test chooses who signs in next and how the next
// ID token is tampered with. Prints one JSON line: {"issuer": "...", "control": "..."}.
import http from 'node:http';
import { OAuth2Server } from 'oauth2-mock-server';
import { generateKeyPairSync, sign } from 'node:crypto';

const server = new OAuth2Server();
const key = await server.issuer.keys.generate('RS256');
await server.start(0, '127.0.0.1');
// Advertise the address we listen on (not `localhost`, which may resolve to ::1 first).
server.issuer.url = `http://127.0.0.1:${server.address().port}`;

// Who signs in: persistent until the test changes it.
let identity = { sub: 'alice-0001', email: 'alice@example.com', name: 'Alice Example', groups: [] };
// How the next ID token is spoilt (once): expired | wrong_nonce | rogue_key | wrong_audience.
let tamper = null;

server.service.on('beforeTokenSigning', (token) => {
  Object.assign(token.payload, identity);
  if (tamper === 'expired') {
    const now = Math.floor(Date.now() / 1000);
    token.payload.iat = now - 7200;
    token.payload.nbf = now - 7200;
    token.payload.exp = now - 3600;
  }
  if (tamper === 'wrong_nonce' && 'nonce' in token.payload) token.payload.nonce = 'not-the-nonce-slipway-sent';
  if (tamper === 'wrong_audience' && token.payload.aud) token.payload.aud = 'some-other-client';
});

// A key the provider never publishes, for forged tokens.
const rogue = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;

// Hooks run synchronously before the response is sent, so the forgery is signed synchronously.
server.service.on('beforeResponse', (response) => {
  const mode = tamper;
  tamper = null;
  if (mode === 'rogue_key' && response.body.id_token) {
    // Same claims and the same `kid`, signed by the rogue key.
    const [, payload] = response.body.id_token.split('.');
    const header = Buffer.from(JSON.stringify({ alg: 'RS256', kid: key.kid, typ: 'JWT' })).toString('base64url');
    const input = `${header}.${payload}`;
    const signature = sign('sha256', Buffer.from(input), rogue).toString('base64url');
    response.body.id_token = `${input}.${signature}`;
  }
});

const control = http.createServer((req, res) => {
  let body = '';
  req.on('data', (chunk) => { body += chunk; });
  req.on('end', async () => {
    const input = body ? JSON.parse(body) : {};
    if (req.url === '/identity') identity = { ...identity, ...input };
    else if (req.url === '/tamper') tamper = input.mode;
    else if (req.url === '/rotate') {
      // A new published signing key that signs the next token. The store hands keys out in
      // turn, so step past the old one once.
      await server.issuer.keys.generate('RS256');
      server.issuer.keys.get();
    } else { res.writeHead(404).end(); return; }
    res.writeHead(204).end();
  });
});
control.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({
    issuer: server.issuer.url,
    control: `http://127.0.0.1:${control.address().port}`,
  }));
});

// The test harness ends us by closing stdin (or by killing us).
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
