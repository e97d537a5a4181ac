package conformance

import "testing"

// Reasons of the cases that do not apply to Tollgate: client operations it
// does not offer.
const (
	noTokenExchange = "Tollgate offers no RFC 8693 token exchange as a client"
	noClientCreds   = "Tollgate offers no client_credentials grant (it is a resource server, and its exchange a confidential client of the authorization-code grant)"
	noOutboundDPoP  = "Tollgate offers no outbound DPoP (its exchange holds no DPoP key; authtest's proofs are a test helper)"
)

// TestNotApplicable registers the cases that Tollgate does not exercise,
// each with its reason: client operations and fields it does not offer.
func TestNotApplicable(t *testing.T) {
	for _, c := range []struct{ id, reason string }{
		{"rfc9449-token-response-token-type-dpop-must-be-accepted", noOutboundDPoP},
		{"rfc8693-grant-type-must-be-token-exchange", noTokenExchange},
		{"rfc8693-subject-token-is-required", noTokenExchange},
		{"rfc8693-default-subject-token-type-is-access-token", noTokenExchange},
		{"rfc8693-actor-token-type-defaults-when-actor-token-is-present", noTokenExchange},
		{"rfc8693-resource-parameter-must-be-sent-when-configured", noTokenExchange},
		{"rfc8693-multiple-resource-parameters-must-be-emitted", noTokenExchange},
		{"rfc8693-error-mapping-invalid-grant", noTokenExchange},
		{"rfc8707-client-credentials-resource-parameter-should-be-supported", noClientCreds},
		{"rfc9449-dpop-provider-must-build-dpop-jwt-header", noOutboundDPoP},
		{"rfc9449-dpop-nonce-challenge-must-trigger-single-retry", noOutboundDPoP},
		{"rfc9449-dpop-nonce-on-success-response-should-be-stored", noOutboundDPoP},
		{"rfc9110-rfc9449-dpop-nonce-header-must-be-treated-case-insensitively", noOutboundDPoP},
		{"rfc8693-audience-parameter-must-be-sent-when-configured", noTokenExchange},
		{"rfc8693-multiple-audience-parameters-must-be-emitted", noTokenExchange},
		{"rfc8693-empty-resource-and-audience-values-must-be-omitted", noTokenExchange},
		{"rfc8693-success-response-must-use-access-token-issued-token-type-when-present", noTokenExchange},
		{"rfc9449-generated-dpop-proof-should-include-exp", noOutboundDPoP},
		{"rfc8707-client-credentials-multiple-resource-parameters-must-be-emitted", noClientCreds},
		{"rfc6749-client-credentials-scopes-must-support-multiple-values", noClientCreds},
		{"rfc9449-dpop-grant-token-type-must-be-dpop", noOutboundDPoP + " (the case is client_credentials with DPoP)"},
		{"rfc9449-dpop-proof-htu-must-strip-query-and-fragment", noOutboundDPoP},
		{"rfc8693-token-exchange-response-must-contain-issued-token-type", noTokenExchange},
	} {
		skipCase(t, c.id, c.reason)
	}
}
