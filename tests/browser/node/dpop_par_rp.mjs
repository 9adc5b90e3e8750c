// A relying party built with oauth4webapi (a certified RP library): PAR + PKCE + DPoP.
// Usage: node dpop_par_rp.mjs ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI
// Prints {"authorization_url": ...}, reads the callback URL on stdin, then prints the result
// of the token request and UserInfo, both with DPoP proofs (RFC 9449), as one JSON line.
import * as oauth from 'oauth4webapi'
import { authorizationRequest, finishCodeFlow, insecure, setUp, withNonceRetry } from './rp.mjs'

const [issuerUrl, clientId, clientSecret, redirectUri] = process.argv.slice(2)
const rp = await setUp(issuerUrl, clientId, clientSecret)
const { as, client, clientAuth, DPoP } = rp
const flow = await authorizationRequest(redirectUri)
const par = await withNonceRetry(
  () => oauth.pushedAuthorizationRequest(as, client, clientAuth, flow.params, { DPoP, ...insecure }),
  (response) => oauth.processPushedAuthorizationResponse(as, client, response),
)
const authorizationUrl = new URL(as.authorization_endpoint)
authorizationUrl.searchParams.set('client_id', clientId)
authorizationUrl.searchParams.set('request_uri', par.request_uri)
const { tokens, claims, userinfo } = await finishCodeFlow(rp, flow, redirectUri, authorizationUrl)
console.log(JSON.stringify({ token_type: tokens.token_type, sub: claims.sub, userinfo }))
