// Package tollgate holds the todo API's OpenAPI description, so that the
// server can serve the same document its tests check it against. The code
// lives in the subpackages: middleware, introspection, todos, api/*, cmd/*.
package tollgate

import _ "embed"

// OpenAPI is openapi.yaml, the todo API's OpenAPI 3.1 description.
//
//go:embed openapi.yaml
var OpenAPI []byte
