module github.com/tollgate-dev/tollgate/bench

go 1.26.8

replace github.com/tollgate-dev/tollgate/middleware => ../middleware

replace github.com/tollgate-dev/tollgate/introspection => ../introspection

require (
	github.com/MicahParks/keyfunc/v3 v3.9.0
	github.com/auth0/go-jwt-middleware/v3 v3.1.0
	github.com/golang-jwt/jwt/v5 v5.3.1
	github.com/tollgate-dev/tollgate/middleware v0.0.0-00010101000000-000000000000
)

require (
	github.com/MicahParks/jwkset v0.11.3 // indirect
	github.com/decred/dcrd/dcrec/secp256k1/v4 v4.4.0 // indirect
	github.com/goccy/go-json v0.10.5 // indirect
	github.com/lestrrat-go/blackmagic v1.0.4 // indirect
	github.com/lestrrat-go/dsig v1.0.0 // indirect
	github.com/lestrrat-go/dsig-secp256k1 v1.0.0 // indirect
	github.com/lestrrat-go/httpcc v1.0.1 // indirect
	github.com/lestrrat-go/httprc/v3 v3.0.3 // indirect
	github.com/lestrrat-go/jwx/v3 v3.0.13 // indirect
	github.com/lestrrat-go/option/v2 v2.0.0 // indirect
	github.com/segmentio/asm v1.2.1 // indirect
	github.com/tollgate-dev/tollgate/introspection v0.1.0 // indirect
	github.com/valyala/fastjson v1.6.7 // indirect
	golang.org/x/crypto v0.46.0 // indirect
	golang.org/x/sync v0.20.0 // indirect
	golang.org/x/sys v0.40.0 // indirect
	golang.org/x/time v0.15.0 // indirect
)
