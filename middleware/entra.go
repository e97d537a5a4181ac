package middleware

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// EntraJWKSURL is the key set Microsoft Entra ID signs the access tokens
// of every tenant with (the common endpoint's jwks_uri).
const EntraJWKSURL = "https://login.microsoftonline.com/common/discovery/v2.0/keys"

// The iss forms of Entra ID access tokens: v2.0 tokens (an application
// whose manifest has requestedAccessTokenVersion 2) and v1.0 tokens.
const (
	entraV2Prefix = "https://login.microsoftonline.com/"
	entraV2Suffix = "/v2.0"
	entraV1Prefix = "https://sts.windows.net/"
	entraV1Suffix = "/"
)

// Entra trusts tenants of a Microsoft Entra ID (Azure AD) multi-tenant
// application, whose tokens carry the tenant in iss:
// https://login.microsoftonline.com/{tid}/v2.0 for v2.0 access tokens,
// https://sts.windows.net/{tid}/ for v1.0 ones. Its Resolver accepts such
// an iss only for an allowed tenant, checks the token's signature against
// one key set shared by every tenant (fetched once, not once per tenant),
// and then requires the verified tid claim to equal the tenant of the
// iss, so that a token of one tenant cannot pass as another's.
//
// Only the global cloud's issuers are recognised; the tenant must be
// written as Entra writes it in iss, a lower-case GUID.
type Entra struct {
	// Tenants are the tenant IDs (GUIDs, the tid claim) whose tokens are
	// accepted.
	Tenants []string
	// Allow, when set, is asked about a tenant not in Tenants, e.g. a
	// lookup in the application's table of customers: true accepts it,
	// false refuses it, an error means it cannot decide now (503). Its
	// answers are remembered as an IssuerResolver's are.
	Allow func(ctx context.Context, tenant string) (bool, error)
	// JWKSURL is the key set of every tenant; default EntraJWKSURL.
	JWKSURL string
	// Audiences are the accepted aud values; default Config.Audiences.
	// v2.0 tokens carry the application's client ID, v1.0 tokens its
	// Application ID URI (api://…) as aud.
	Audiences []string
}

// EntraTenants is the IssuerResolver that trusts the tokens of the listed
// tenants of an Entra ID multi-tenant application: Entra{Tenants:
// tenants}.Resolver().
func EntraTenants(tenants ...string) (IssuerResolver, error) {
	return Entra{Tenants: tenants}.Resolver()
}

// Resolver checks e and returns its IssuerResolver.
func (e Entra) Resolver() (IssuerResolver, error) {
	var errs []error
	if len(e.Tenants) == 0 && e.Allow == nil {
		errs = append(errs, errors.New("middleware: Entra needs Tenants or Allow"))
	}
	tenants := make([]string, 0, len(e.Tenants))
	for _, t := range e.Tenants {
		// Entra writes the tid in lower case; accept a list written in
		// either, keep it in Entra's.
		lt := strings.ToLower(strings.TrimSpace(t))
		if !isGUID(lt) {
			errs = append(errs, fmt.Errorf("middleware: Entra tenant %q is not a tenant ID (a GUID such as 72f988bf-86f1-41af-91ab-2d7cd011db47; a domain name never appears in iss)", t))
			continue
		}
		tenants = append(tenants, lt)
	}
	jwksURL := e.JWKSURL
	if jwksURL == "" {
		jwksURL = EntraJWKSURL
	} else if err := checkHTTPURL(jwksURL); err != nil {
		errs = append(errs, fmt.Errorf("middleware: Entra JWKSURL: %w", err))
	}
	if slices.Contains(e.Audiences, "") {
		errs = append(errs, errors.New("middleware: Entra Audiences may not contain an empty value"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	allow := e.Allow
	audiences := slices.Clone(e.Audiences)
	return func(ctx context.Context, iss string) (IssuerConfig, error) {
		tid, ok := entraTenant(iss)
		if !ok {
			return IssuerConfig{}, fmt.Errorf("%w: not an Entra ID issuer", ErrUnknownIssuer)
		}
		if !slices.Contains(tenants, tid) {
			if allow == nil {
				return IssuerConfig{}, fmt.Errorf("%w: tenant %s is not allowed", ErrUnknownIssuer, tid)
			}
			ok, err := allow(ctx, tid)
			if err != nil {
				return IssuerConfig{}, err
			}
			if !ok {
				return IssuerConfig{}, fmt.Errorf("%w: tenant %s is not allowed", ErrUnknownIssuer, tid)
			}
		}
		return IssuerConfig{
			Issuer:         iss,
			Audiences:      audiences,
			JWKSURL:        jwksURL,
			RequiredClaims: map[string]string{"tid": tid},
		}, nil
	}, nil
}

// entraTenant returns the tenant of an Entra ID access token's iss, in
// either form, or false when iss has neither form with a lower-case GUID
// as its tenant (the common, organizations and consumers endpoints name
// no tenant and are never an issuer).
func entraTenant(iss string) (string, bool) {
	for _, f := range [][2]string{{entraV2Prefix, entraV2Suffix}, {entraV1Prefix, entraV1Suffix}} {
		rest, ok := strings.CutPrefix(iss, f[0])
		if !ok {
			continue
		}
		tid, ok := strings.CutSuffix(rest, f[1])
		if ok && isGUID(tid) {
			return tid, true
		}
		return "", false
	}
	return "", false
}

// isGUID reports whether s is a GUID in lower-case 8-4-4-4-12 form.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}
