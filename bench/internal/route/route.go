// Package route gives loadserver's endpoints the URL paths they are served
// at: each endpoint's name (/none, /bare, /auth0, /tollgate,
// /tollgate-nocache) padded with '-' to the length of the longest, so that
// routing (the request line, ServeMux's matching, path cleaning) costs
// every endpoint the same and only the authentication differs. Without
// it, /tollgate paid about 1,000 instructions per request more than /none
// for its four extra characters alone (callgrind, make loadtest
// INSTRUCTIONS=1000), some 2% of the unprotected handler.
package route

import "strings"

// width is the length of the longest endpoint name.
const width = len("/tollgate-nocache")

// Path is the URL path endpoint name is served at.
func Path(name string) string {
	if len(name) >= width {
		return name
	}
	return name + strings.Repeat("-", width-len(name))
}
