// A relying party built with oauth4webapi that signs its authorization requests (JAR,
// RFC 9101) with its own key, and uses DPoP (RFC 9449) for its tokens.
// Usage: IDP_RP_PRIVATE_JWK='{...}' node jar_rp.mjs ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI MODE
// MODE:
//   par       the request object is pushed (RFC 9126 §3) with a DPoP proof; the browser gets
//             client_id and request_uri only
//   value     the request object travels by value at /authorize (RFC 9101 §5.1), with
//             dpop_jkt inside it (RFC 9449 §10)
//   tampered  a signed request object with one claim changed afterwards, pushed
//   unsigned  an unsigned (alg "none") request object, pushed
// par/value print {"authorization_url": ...}, read the callback URL on stdin, then print the
// token response, the ID token's claims and UserInfo as one JSON line; tampered/unsigned print
// the error the server answered.
import * as oauth from 'oauth4webapi'
import { authorizationRequest, finishCodeFlow, insecure, setUp, withNonceRetry } from './rp.mjs'

const [issuerUrl, clientId, clientSecret, redirectUri, mode] = process.argv.slice(2)
const rp = await setUp(issuerUrl, clientId, clientSecret)
const { as, client, clientAuth, DPoP } = rp

// The client's request object signing key; its public half is registered for the client.
const jwk = JSON.parse(process.env.IDP_RP_PRIVATE_JWK)
const signingKey = {
  kid: jwk.kid,
  key: await crypto.subtle.importKey(
    'jwk', jwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign'],
  ),
}

const b64url = (value) => Buffer.from(value).toString('base64url')
const fromB64url = (value) => JSON.parse(Buffer.from(value, 'base64url').toString())

const flow = await authorizationRequest(redirectUri)
const params = flow.params
if (mode === 'value') params.dpop_jkt = await DPoP.calculateThumbprint()
let requestObject = await oauth.issueRequestObject(as, client, params, signingKey)

if (mode === 'tampered' || mode === 'unsigned') {
  const [header, payload, signature] = requestObject.split('.')
  const claims = fromB64url(payload)
  claims.redirect_uri = 'https://attacker.example/cb'
  requestObject = mode === 'tampered'
    ? [header, b64url(JSON.stringify(claims)), signature].join('.')
    : [b64url(JSON.stringify({ alg: 'none', typ: 'oauth-authz-req+jwt' })),
       b64url(JSON.stringify(claims)), ''].join('.')
  try {
    await withNonceRetry(
      () => oauth.pushedAuthorizationRequest(
        as, client, clientAuth, { request: requestObject }, { DPoP, ...insecure },
      ),
      (response) => oauth.processPushedAuthorizationResponse(as, client, response),
    )
    console.log(JSON.stringify({ accepted: true }))
  } catch (err) {
    if (!(err instanceof oauth.ResponseBodyError)) throw err
    console.log(JSON.stringify({ status: err.status, error: err.error }))
  }
  process.exit(0)
}

const authorizationUrl = new URL(as.authorization_endpoint)
authorizationUrl.searchParams.set('client_id', clientId)
if (mode === 'par') {
  const par = await withNonceRetry(
    () => oauth.pushedAuthorizationRequest(
      as, client, clientAuth, { request: requestObject }, { DPoP, ...insecure },
    ),
    (response) => oauth.processPushedAuthorizationResponse(as, client, response),
  )
  authorizationUrl.searchParams.set('request_uri', par.request_uri)
} else {
  authorizationUrl.searchParams.set('request', requestObject)
}
const { tokens, claims, userinfo } = await finishCodeFlow(rp, flow, redirectUri, authorizationUrl)
console.log(JSON.stringify({
  token_type: tokens.token_type,
  id_token: tokens.id_token,
  nonce: flow.nonce,
  request_object_header: fromB64url(requestObject.split('.')[0]),
  sub: claims.sub,
  userinfo,
}))
