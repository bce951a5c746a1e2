// The pure OAuth rules, as numbered tables: which redirect URIs can be registered, which presented ones
// match (exact, except the port of a loopback IP literal, RFC 8252 §7.3), and PKCE S256 (RFC 7636).
import { s256, verifierMatches } from '../../../src/broker/oauth/pkce.js';
import { redirectUriMatches, redirectUriProblem, withQuery } from '../../../src/broker/oauth/redirect.js';

describe('redirectUriProblem (registration)', () => {
  test.each([
    ['1', 'https://app.example/cb', true],
    ['2', 'https://app.example:8443/cb?tenant=a', true],
    ['3', 'http://127.0.0.1/callback', true],
    ['4', 'http://[::1]:8080/callback', true],
    ['5', 'http://localhost:3000/cb', true],
    ['6', 'http://app.example/cb', false],
    ['7', 'http://10.0.0.1/cb', false],
    ['8', 'https://app.example/cb#frag', false],
    ['9', 'https://user:pw@app.example/cb', false],
    ['10', 'javascript:alert(1)', false],
    ['11', 'data:text/html,hi', false],
    ['12', '/relative/cb', false],
    ['13', `https://app.example/${'a'.repeat(2000)}`, false],
  ])('%s. %s → allowed %s', (_n, uri, allowed) => {
    expect(redirectUriProblem(uri) === undefined).toBe(allowed);
  });
});

describe('redirectUriMatches', () => {
  const registered = [
    'https://app.example/cb',
    'http://127.0.0.1/callback',
    'http://[::1]/callback',
    'http://localhost:3000/cb',
  ];
  test.each([
    ['1. exact', 'https://app.example/cb', true],
    ['2. one character differs', 'https://app.example/cB', false],
    ['3. trailing slash', 'https://app.example/cb/', false],
    ['4. extra query', 'https://app.example/cb?x=1', false],
    ['5. other scheme', 'http://app.example/cb', false],
    ['6. loopback IPv4, any port', 'http://127.0.0.1:51234/callback', true],
    ['7. loopback IPv6, any port', 'http://[::1]:9/callback', true],
    ['8. loopback, other path', 'http://127.0.0.1:51234/callbacks', false],
    ['9. loopback, dot segments', 'http://127.0.0.1:51234/x/../callback', false],
    ['10. localhost is not an IP literal: exact only', 'http://localhost:3001/cb', false],
    ['11. localhost exact', 'http://localhost:3000/cb', true],
    ['12. https on a loopback IP is another URI', 'https://127.0.0.1:5000/callback', false],
    ['13. another loopback address', 'http://127.0.0.2:5000/callback', false],
    ['14. userinfo trick', 'http://127.0.0.1:5000@evil.example/callback', false],
    ['15. loopback, a port past 65535 is no URL', 'http://127.0.0.1:99999/callback', false],
  ])('%s', (_name, presented, matches) => {
    expect(redirectUriMatches(registered, presented)).toBe(matches);
  });
});

test('withQuery keeps the redirect URI’s own query and encodes what it adds', () => {
  expect(
    withQuery('https://app.example/cb?tenant=a', {
      code: 'x y',
      state: undefined,
      iss: 'https://tb.example',
    }),
  ).toBe('https://app.example/cb?tenant=a&code=x+y&iss=https%3A%2F%2Ftb.example');
});

describe('PKCE S256', () => {
  // RFC 7636 Appendix B.
  const verifier = 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk';
  const challenge = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM';
  test.each([
    ['1. the RFC 7636 example', verifier, true],
    ['2. one character off', `${verifier.slice(0, -1)}l`, false],
    ['3. too short (42)', verifier.slice(0, 42), false],
    ['4. outside the alphabet', `${verifier.slice(0, -1)}+`, false],
    ['5. the challenge itself', challenge, false],
  ])('%s', (_name, presented, ok) => {
    expect(verifierMatches(presented, challenge)).toBe(ok);
  });
  test('6. s256 of the RFC example', () => expect(s256(verifier)).toBe(challenge));
});
