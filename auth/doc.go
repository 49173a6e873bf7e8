// Package auth turns a WebSocket upgrade request into an Identity: who the
// connection acts for (user, tenant, roles) and until when.
//
// It has two halves. An Extractor finds the bearer token in the request —
// the Authorization header, a Sec-WebSocket-Protocol entry (the only way a
// browser can send one), or, when opted in, a cookie or a query parameter.
// An Authenticator verifies the token; JWT is the built-in one, on
// github.com/golang-jwt/jwt/v5.
//
// Everything fails closed. NewJWT refuses to start without a key (there is no
// fallback secret), with a short secret, with "none" or with an algorithm that
// does not belong to the key, so HS/RS key confusion cannot be configured, and
// it re-checks the key family on every token. Tokens must carry exp and sub,
// are bounded in size before any parsing, and iss/aud are enforced when set.
// Errors wrap ErrNoToken, ErrInvalidToken, ErrTokenExpired or
// ErrTokenTooLarge and never contain the token, so they are safe to log.
//
// The smallest use, inside an http.Handler, before accepting the WebSocket:
//
//	verifier, err := auth.NewJWT(auth.JWTOptions{
//		HMACSecret: []byte(os.Getenv("JWT_SECRET")), // empty: NewJWT fails with ErrNoKey
//		Issuer:     "https://id.example.com",
//		Audience:   "chat",
//	})
//	if err != nil {
//		log.Fatal(err)
//	}
//	...
//	token, src, err := auth.Extractor{}.Extract(r)
//	var id auth.Identity
//	if err == nil {
//		id, err = verifier.Authenticate(r.Context(), token)
//	}
//	if err != nil {
//		// answer 401; log err and src, never the token
//		return
//	}
//	ctx := auth.NewContext(r.Context(), id)
//
// For keys published as JWKS, pass the Keyfunc of
// github.com/MicahParks/keyfunc/v3 in JWTOptions.Keyfunc together with an
// explicit JWTOptions.Algorithms.
package auth
