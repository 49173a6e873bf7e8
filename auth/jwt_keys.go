package auth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"slices"

	"github.com/golang-jwt/jwt/v5"
)

// supportedAlgorithms lists every algorithm NewJWT can allow, in the order
// defaults are reported. "none" is deliberately absent.
var supportedAlgorithms = []string{
	"HS256", "HS384", "HS512",
	"RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512",
	"EdDSA",
}

// keySourceFunc returns the key (or a jwt.VerificationKeySet) for a token
// whose algorithm is already allowed. Its errors wrap ErrKeyLookup when the
// keys could not be obtained; any other error makes the token invalid.
type keySourceFunc func(ctx context.Context, t *jwt.Token) (any, error)

// asymmetricAlgorithms is JWKSURL's default allowlist: a published key set
// holds public keys, so HMAC is never among them.
var asymmetricAlgorithms = supportedAlgorithms[3:]

// keySource validates the key options and returns where verification keys
// come from, the algorithm allowlist that goes with them and, for
// JWKSURL, the key set to close.
func keySource(opts JWTOptions) (keySourceFunc, []string, *jwks, error) {
	n := 0
	for _, set := range []bool{len(opts.HMACSecret) > 0, opts.PublicKey != nil, opts.KeyFunc != nil, opts.JWKSURL != ""} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		return nil, nil, nil, fmt.Errorf("%w: set one of HMACSecret, PublicKey, JWKSURL or KeyFunc", ErrNoKey)
	case n > 1:
		return nil, nil, nil, fmt.Errorf("%w: set only one of HMACSecret, PublicKey, JWKSURL and KeyFunc", ErrInvalidOptions)
	}

	switch {
	case opts.KeyFunc != nil:
		algs, err := keyfuncAlgorithms(opts.Algorithms)
		return userKeys(opts.KeyFunc), algs, nil, err
	case opts.JWKSURL != "":
		algs, err := jwksAlgorithms(opts.Algorithms)
		if err != nil {
			return nil, nil, nil, err
		}
		set, err := newJWKS(opts.JWKSURL, opts.JWKS)
		if err != nil {
			return nil, nil, nil, err
		}
		return set.key, algs, set, nil
	}

	var key any
	if len(opts.HMACSecret) > 0 {
		if len(opts.HMACSecret) < MinHMACSecretBytes {
			return nil, nil, nil, fmt.Errorf("%w: HMACSecret is %d bytes, need at least %d",
				ErrInvalidOptions, len(opts.HMACSecret), MinHMACSecretBytes)
		}
		// A copy, so that a caller reusing its buffer cannot swap the key.
		key = bytes.Clone(opts.HMACSecret)
	} else {
		if err := checkPublicKey(opts.PublicKey); err != nil {
			return nil, nil, nil, err
		}
		key = opts.PublicKey
	}

	algs, err := staticAlgorithms(opts.Algorithms, key)
	if err != nil {
		return nil, nil, nil, err
	}
	return func(context.Context, *jwt.Token) (any, error) { return key, nil }, algs, nil, nil
}

// userKeys adapts a KeyFunc: ErrUnknownKey (or no key at all) makes the
// token invalid, any other error is a key lookup failure.
func userKeys(kf KeyFunc) keySourceFunc {
	return func(ctx context.Context, t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		keys, err := kf(ctx, t.Method.Alg(), kid)
		switch {
		case errors.Is(err, ErrUnknownKey):
			return nil, err
		case err != nil:
			return nil, fmt.Errorf("%w: %w", ErrKeyLookup, err)
		case len(keys) == 0:
			return nil, ErrUnknownKey
		case len(keys) == 1:
			return keys[0], nil
		}
		set := jwt.VerificationKeySet{Keys: make([]jwt.VerificationKey, 0, len(keys))}
		for _, k := range keys {
			set.Keys = append(set.Keys, k)
		}
		return set, nil
	}
}

// jwksAlgorithms validates the allowlist given with JWKSURL: asymmetric
// algorithms only, all of them by default.
func jwksAlgorithms(requested []string) ([]string, error) {
	if len(requested) == 0 {
		return slices.Clone(asymmetricAlgorithms), nil
	}
	for _, alg := range requested {
		m, err := signingMethod(alg)
		if err != nil {
			return nil, err
		}
		if _, ok := m.(*jwt.SigningMethodHMAC); ok {
			return nil, fmt.Errorf("%w: %s needs a shared secret, which a JWKS must not publish", ErrInvalidOptions, alg)
		}
	}
	return slices.Clone(requested), nil
}

// checkPublicKey explains why a PublicKey option is unusable, if it is.
func checkPublicKey(key any) error {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return fmt.Errorf("%w: nil RSA key", ErrInvalidOptions)
		}
		if bits := k.N.BitLen(); bits < MinRSAKeyBits {
			return fmt.Errorf("%w: RSA key is %d bits, need at least %d", ErrInvalidOptions, bits, MinRSAKeyBits)
		}
	case *ecdsa.PublicKey:
		if k == nil || esAlgorithm(k.Curve) == "" {
			return fmt.Errorf("%w: ECDSA key must use P-256, P-384 or P-521", ErrInvalidOptions)
		}
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: Ed25519 key is %d bytes, want %d", ErrInvalidOptions, len(k), ed25519.PublicKeySize)
		}
	case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
		return fmt.Errorf("%w: PublicKey holds a private key (%T); pass its public half", ErrInvalidOptions, key)
	default:
		return fmt.Errorf("%w: unsupported PublicKey type %T", ErrInvalidOptions, key)
	}
	return nil
}

// staticAlgorithms returns the allowlist for a fixed key: the requested
// algorithms if each fits the key, or every supported algorithm that does.
func staticAlgorithms(requested []string, key any) ([]string, error) {
	if len(requested) == 0 {
		var algs []string
		for _, alg := range supportedAlgorithms {
			if keyFits(jwt.GetSigningMethod(alg), key) {
				algs = append(algs, alg)
			}
		}
		return algs, nil
	}
	for _, alg := range requested {
		m, err := signingMethod(alg)
		if err != nil {
			return nil, err
		}
		if !keyFits(m, key) {
			return nil, fmt.Errorf("%w: algorithm %q does not match the %s key", ErrInvalidOptions, alg, keyKind(key))
		}
	}
	return append([]string(nil), requested...), nil
}

// keyfuncAlgorithms validates the allowlist given with a KeyFunc. HS and
// asymmetric algorithms may not be mixed: that combination is exactly the
// setting in which a public key can be abused as an HMAC secret.
func keyfuncAlgorithms(requested []string) ([]string, error) {
	if len(requested) == 0 {
		return nil, fmt.Errorf("%w: Algorithms is required with KeyFunc", ErrInvalidOptions)
	}
	var hmac, asym bool
	for _, alg := range requested {
		m, err := signingMethod(alg)
		if err != nil {
			return nil, err
		}
		if _, ok := m.(*jwt.SigningMethodHMAC); ok {
			hmac = true
		} else {
			asym = true
		}
	}
	if hmac && asym {
		return nil, fmt.Errorf("%w: Algorithms mixes HMAC and public-key algorithms", ErrInvalidOptions)
	}
	return append([]string(nil), requested...), nil
}

// signingMethod resolves a supported algorithm name.
func signingMethod(alg string) (jwt.SigningMethod, error) {
	if alg == jwt.SigningMethodNone.Alg() {
		return nil, fmt.Errorf("%w: algorithm \"none\" is never allowed", ErrInvalidOptions)
	}
	for _, s := range supportedAlgorithms {
		if s == alg {
			return jwt.GetSigningMethod(alg), nil
		}
	}
	return nil, fmt.Errorf("%w: unsupported algorithm %q", ErrInvalidOptions, alg)
}

// keyForMethod returns the key to verify a token signed with m, or
// errKeyMismatch when key belongs to another family. For a key set it keeps
// only the keys that fit, so a JWKS mixing key types still works.
func keyForMethod(m jwt.SigningMethod, key any) (any, error) {
	if set, ok := key.(jwt.VerificationKeySet); ok {
		var fit []jwt.VerificationKey
		for _, k := range set.Keys {
			if keyFits(m, k) {
				fit = append(fit, k)
			}
		}
		if len(fit) == 0 {
			return nil, errKeyMismatch
		}
		return jwt.VerificationKeySet{Keys: fit}, nil
	}
	if !keyFits(m, key) {
		return nil, errKeyMismatch
	}
	return key, nil
}

// keyFits reports whether key is a sound verification key for m: same
// family, and strong enough. This check, not only the allowlist, is what
// makes HS/RS key confusion impossible.
func keyFits(m jwt.SigningMethod, key any) bool {
	switch m := m.(type) {
	case *jwt.SigningMethodHMAC:
		k, ok := key.([]byte)
		return ok && len(k) >= MinHMACSecretBytes
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS:
		k, ok := key.(*rsa.PublicKey)
		return ok && k != nil && k.N != nil && k.N.BitLen() >= MinRSAKeyBits
	case *jwt.SigningMethodECDSA:
		k, ok := key.(*ecdsa.PublicKey)
		return ok && k != nil && esAlgorithm(k.Curve) == m.Alg()
	case *jwt.SigningMethodEd25519:
		k, ok := key.(ed25519.PublicKey)
		return ok && len(k) == ed25519.PublicKeySize
	}
	return false
}

// esAlgorithm is the one JWS algorithm defined for an ECDSA curve, or "".
func esAlgorithm(c elliptic.Curve) string {
	switch c {
	case elliptic.P256():
		return "ES256"
	case elliptic.P384():
		return "ES384"
	case elliptic.P521():
		return "ES512"
	}
	return ""
}

// keyKind names a key's family for error messages.
func keyKind(key any) string {
	switch key.(type) {
	case []byte:
		return "HMAC"
	case *rsa.PublicKey:
		return "RSA"
	case *ecdsa.PublicKey:
		return "ECDSA"
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", key)
}
