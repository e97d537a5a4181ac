package exchange

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
)

// Step-up (RFC 9470 §4): when the todo API answers 401
// insufficient_user_authentication, its challenge names the acr_values and
// max_age a new authentication must meet, and the page sends the person to
// /login with them. They are passed on to the authorization request as they
// are (OpenID Connect Core §3.1.2.1 defines both); the todo API judges the
// token that comes back, so nothing here trusts the answer.

// Bounds of the step-up parameters: they travel in the transaction cookie,
// which must stay under a browser's 4 KB, and real acr values are short
// URNs or numbers.
const (
	maxACRValues       = 10
	maxACRValueLen     = 256
	maxACRValuesLen    = 512
	maxMaxAge          = 1<<31 - 1 // seconds: 68 years
	maxMaxAgeDigitsLen = 10
)

// errStepUpParams is the one answer to a bad acr_values or max_age: fixed
// text, so that nothing the request carried is shown back.
var errStepUpParams = errors.New("exchange: acr_values must be a space-separated list of up to 10 printable values without quotes or backslashes, and max_age a whole number of seconds")

// stepUpParams reads acr_values and max_age from a /login query, each at
// most once, and returns them normalised (values separated by single
// spaces; max_age without leading zeros), "" for the absent or empty ones.
func stepUpParams(q url.Values) (acrValues, maxAge string, err error) {
	if len(q["acr_values"]) > 1 || len(q["max_age"]) > 1 {
		return "", "", errStepUpParams
	}
	if raw := q.Get("acr_values"); raw != "" {
		if len(raw) > maxACRValuesLen {
			return "", "", errStepUpParams
		}
		// Only the space separates; runs of spaces are let through as one.
		var values []string
		for _, v := range strings.Split(raw, " ") {
			if v == "" {
				continue
			}
			if !isACRValue(v) {
				return "", "", errStepUpParams
			}
			values = append(values, v)
		}
		if len(values) == 0 || len(values) > maxACRValues {
			return "", "", errStepUpParams
		}
		acrValues = strings.Join(values, " ")
	}
	if raw := q.Get("max_age"); raw != "" {
		if len(raw) > maxMaxAgeDigitsLen {
			return "", "", errStepUpParams
		}
		for i := 0; i < len(raw); i++ {
			if raw[i] < '0' || raw[i] > '9' {
				return "", "", errStepUpParams
			}
		}
		n, err := strconv.ParseUint(raw, 10, 64)
		if err != nil || n > maxMaxAge {
			return "", "", errStepUpParams
		}
		maxAge = strconv.FormatUint(n, 10)
	}
	return acrValues, maxAge, nil
}

// isACRValue reports whether v is one acr value: printable ASCII without
// space, '"' or '\' (what fits a quoted challenge parameter, RFC 6750 §3).
func isACRValue(v string) bool {
	if v == "" || len(v) > maxACRValueLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// loginQuery is the /login query that starts the same attempt again: the
// return path, the step-up parameters and any extra pairs.
func loginQuery(tx transaction, extra ...string) url.Values {
	q := url.Values{}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	if tx.ReturnTo != "" && tx.ReturnTo != "/" {
		q.Set("returnTo", tx.ReturnTo)
	}
	if tx.ACRValues != "" {
		q.Set("acr_values", tx.ACRValues)
	}
	if tx.MaxAge != "" {
		q.Set("max_age", tx.MaxAge)
	}
	return q
}
