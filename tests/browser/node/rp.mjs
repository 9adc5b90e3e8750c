// What the oauth4webapi relying parties of tests/browser share: discovery, client
// authentication and a DPoP key (RFC 9449), the nonce retry, the authorization request's
// parameters, and the second half of the code flow (callback on stdin, token request,
// ID token, UserInfo), all as an ordinary RP written with the library would do them.
import * as oauth from 'oauth4webapi'
import * as readline from 'node:readline'

export const insecure = { [oauth.allowInsecureRequests]: true } // the test server is on loopback http

export async function setUp(issuerUrl, clientId, clientSecret) {
  const issuer = new URL(issuerUrl)
  const as = await oauth.processDiscoveryResponse(
    issuer,
    await oauth.discoveryRequest(issuer, { ...insecure, algorithm: 'oidc' }),
  )
  const client = { client_id: clientId }
  const clientAuth = oauth.ClientSecretBasic(clientSecret)
  const DPoP = oauth.DPoP(client, await oauth.generateKeyPair('ES256'))
  return { as, client, clientAuth, DPoP }
}

// The library stores a server nonce from the DPoP-Nonce header; one retry uses it (§8).
export async function withNonceRetry(request, process) {
  try {
    return await process(await request())
  } catch (err) {
    if (oauth.isDPoPNonceError(err)) return await process(await request())
    throw err
  }
}

// A code flow's request: PKCE (RFC 7636), state and an OIDC nonce.
export async function authorizationRequest(redirectUri) {
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
  return { verifier, state, nonce, params }
}

// Prints the authorization URL, reads the callback URL on stdin, redeems the code and calls
// UserInfo, both with DPoP proofs.
export async function finishCodeFlow(rp, flow, redirectUri, authorizationUrl) {
  const { as, client, clientAuth, DPoP } = rp
  console.log(JSON.stringify({ authorization_url: authorizationUrl.href }))
  const callback = await new Promise((resolve) => {
    const lines = readline.createInterface({ input: process.stdin })
    lines.once('line', (line) => { lines.close(); resolve(line.trim()) })
  })
  const callbackParams = oauth.validateAuthResponse(as, client, new URL(callback), flow.state)
  const tokens = await withNonceRetry(
    () => oauth.authorizationCodeGrantRequest(
      as, client, clientAuth, callbackParams, redirectUri, flow.verifier, { DPoP, ...insecure },
    ),
    (response) => oauth.processAuthorizationCodeResponse(as, client, response, {
      expectedNonce: flow.nonce, requireIdToken: true,
    }),
  )
  const claims = oauth.getValidatedIdTokenClaims(tokens)
  const userinfo = await withNonceRetry(
    () => oauth.userInfoRequest(as, client, tokens.access_token, { DPoP, ...insecure }),
    (response) => oauth.processUserInfoResponse(as, client, claims.sub, response),
  )
  return { tokens, claims, userinfo }
}
