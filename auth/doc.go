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
// A token with a "crit" header or an iat in the future is refused, and
// JWTOptions.SubjectPattern can restrict which sub values are users at all,
// for deployments that refuse look-alike ids.
// Errors wrap ErrNoToken, ErrInvalidToken, ErrTokenExpired, ErrTokenTooLarge
// or ErrKeyLookup and never contain the token, so they are safe to log.
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
// For keys an identity provider publishes as a JSON Web Key Set, give its
// URL instead of a key; rotation by kid, refresh and the algorithm
// protections are built in (on github.com/MicahParks/keyfunc/v3), and a
// JWKS outage fails with ErrKeyLookup ("key_lookup" from Reason), never
// mistaken for forged tokens:
//
//	verifier, err := auth.NewJWT(auth.JWTOptions{
//		JWKSURL:  "https://id.example.com/.well-known/jwks.json",
//		Issuer:   "https://id.example.com/",
//		Audience: "chat",
//		// A service keeps its own claims in the identity:
//		Claims: func(c map[string]any, id *auth.Identity) error {
//			plan, _ := c["plan"].(string)
//			id.Extra = Account{Plan: plan}
//			return nil
//		},
//	})
//	...
//	defer verifier.Close() // stops the key refresh
//	acct, ok := auth.ExtraAs[Account](id)
//
// Other key sources plug in through JWTOptions.KeyFunc.
package auth
