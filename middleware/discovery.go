package middleware

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Metadata is the part of an authorization server's metadata (OpenID
// Connect Discovery 1.0 §3, RFC 8414 §2) that a resource server uses.
type Metadata struct {
	Issuer                string `json:"issuer"`
	JWKSURI               string `json:"jwks_uri"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
}

// IntrospectionURL returns the issuer's introspection_endpoint, for an
// introspection client's Endpoint, or a clear error when the issuer
// publishes none or publishes something other than an http(s) URL.
func (m *Metadata) IntrospectionURL() (string, error) {
	if m.IntrospectionEndpoint == "" {
		return "", fmt.Errorf("middleware: issuer %q publishes no introspection_endpoint; set the introspection URL", m.Issuer)
	}
	if err := checkHTTPURL(m.IntrospectionEndpoint); err != nil {
		return "", fmt.Errorf("middleware: discovered introspection_endpoint: %w", err)
	}
	return m.IntrospectionEndpoint, nil
}

// Discover fetches the issuer's metadata: first
// {issuer}/.well-known/openid-configuration, then the RFC 8414 location
// /.well-known/oauth-authorization-server{path}. The document's issuer must
// equal the configured one exactly (OIDC Discovery §4.3, RFC 8414 §3.3),
// which stops a document from vouching for another issuer's keys.
//
// client may be nil for http.DefaultClient. Each request is bounded by
// DefaultHTTPTimeout through its context, whatever the client's own
// timeout, so a server that accepts the connection and never answers
// cannot hold a program's start.
func Discover(ctx context.Context, client *http.Client, issuer string) (*Metadata, error) {
	return discover(ctx, client, issuer, DefaultHTTPTimeout)
}

// discover is Discover with timeout bounding each request.
func discover(ctx context.Context, client *http.Client, issuer string, timeout time.Duration) (*Metadata, error) {
	if client == nil {
		client = http.DefaultClient
	}
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("middleware: issuer %q is not an http(s) URL without query or fragment", issuer)
	}
	oidc := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	rfc8414 := u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + strings.TrimSuffix(u.EscapedPath(), "/")
	var errs []error
	for _, loc := range []string{oidc, rfc8414} {
		md, err := fetchMetadata(ctx, client, loc, timeout)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if md.Issuer != issuer {
			return nil, fmt.Errorf("middleware: metadata at %s names issuer %q, want exactly %q", loc, md.Issuer, issuer)
		}
		return md, nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	// One line: this error is what a program prints when it cannot start.
	return nil, fmt.Errorf("middleware: discovery for issuer %q failed: %s", issuer, strings.Join(msgs, "; "))
}

func fetchMetadata(ctx context.Context, client *http.Client, loc string, timeout time.Duration) (*Metadata, error) {
	// A context, not the client's Timeout: the client may be the caller's,
	// without one.
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", loc, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, DefaultMaxMetadataBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", loc, err)
	}
	if len(body) > DefaultMaxMetadataBytes {
		return nil, fmt.Errorf("GET %s: document larger than %d bytes", loc, DefaultMaxMetadataBytes)
	}
	var md Metadata
	if err := json.Unmarshal(body, &md); err != nil {
		return nil, fmt.Errorf("GET %s: not a metadata document: %w", loc, err)
	}
	return &md, nil
}
