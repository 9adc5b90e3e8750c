// A relying party built with oauth4webapi (a certified RP library): PAR + PKCE + DPoP.
// Usage: node dpop_par_rp.mjs ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI
// Prints {"authorization_url": ...}, reads the callback URL on stdin, then prints the result
// of the token request and UserInfo, both with DPoP proofs (RFC 9449), as one JSON line.
import * as oauth from 'oauth4webapi'
import * as readline from 'node:readline'

const [issuerUrl, clientId, clientSecret, redirectUri] = process.argv.slice(2)
const issuer = new URL(issuerUrl)
const insecure = { [oauth.allowInsecureRequests]: true } // the test server is on loopback http

const as = await oauth.processDiscoveryResponse(
  issuer,
  await oauth.discoveryRequest(issuer, { ...insecure, algorithm: 'oidc' }),
)
const client = { client_id: clientId }
const clientAuth = oauth.ClientSecretBasic(clientSecret)
const DPoP = oauth.DPoP(client, await oauth.generateKeyPair('ES256'))

// The library stores a server nonce from the DPoP-Nonce header; one retry uses it (§8).
async function withNonceRetry(request, process) {
  try {
    return await process(await request())
  } catch (err) {
    if (oauth.isDPoPNonceError(err)) return await process(await request())
    throw err
  }
}

const verifier = oauth.generateRandomCodeVerifier()
const state = oauth.generateRandomState()
const nonce = oauth.generateRandomNonce()
const params = {
  response_type: 'code',
  redirect_uri: redirectUri,
  scope: 'openid profile email',
  code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
  code_challenge_method: 'S256',
  state,
  nonce,
}
const par = await withNonceRetry(
  () => oauth.pushedAuthorizationRequest(as, client, clientAuth, params, { DPoP, ...insecure }),
  (response) => oauth.processPushedAuthorizationResponse(as, client, response),
)
const authorizationUrl = new URL(as.authorization_endpoint)
authorizationUrl.searchParams.set('client_id', clientId)
authorizationUrl.searchParams.set('request_uri', par.request_uri)
console.log(JSON.stringify({ authorization_url: authorizationUrl.href }))

const callback = await new Promise((resolve) => {
  const lines = readline.createInterface({ input: process.stdin })
  lines.once('line', (line) => { lines.close(); resolve(line.trim()) })
})
const callbackParams = oauth.validateAuthResponse(as, client, new URL(callback), state)
const tokens = await withNonceRetry(
  () => oauth.authorizationCodeGrantRequest(
    as, client, clientAuth, callbackParams, redirectUri, verifier, { DPoP, ...insecure },
  ),
  (response) => oauth.processAuthorizationCodeResponse(as, client, response, {
    expectedNonce: nonce, requireIdToken: true,
  }),
)
const claims = oauth.getValidatedIdTokenClaims(tokens)
const userinfo = await withNonceRetry(
  () => oauth.userInfoRequest(as, client, tokens.access_token, { DPoP, ...insecure }),
  (response) => oauth.processUserInfoResponse(as, client, claims.sub, response),
)
console.log(JSON.stringify({ token_type: tokens.token_type, sub: claims.sub, userinfo }))
