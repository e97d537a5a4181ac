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
//
// An endpoint taken from an authorization server's metadata must be an
// absolute https URL when the configured issuer is https; only when the
// configured issuer itself is an http:// URL (which an operator chooses,
// e.g. a development server on loopback) may its metadata name http://
// endpoints. Relative and non-http(s) URLs are refused. The rule covers
// jwks_uri (New) and introspection_endpoint (IntrospectionURL), not the
// endpoints an operator configures (Config.JWKSURL, an introspection
// client's Endpoint). Whatever its URL, a metadata or key request for an
// https URL that redirects lead to plain http is refused: the answer
// could be anyone's on the network path.
type Metadata struct {
	Issuer                string `json:"issuer"`
	JWKSURI               string `json:"jwks_uri"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
}

// IntrospectionURL returns the issuer's introspection_endpoint, for an
// introspection client's Endpoint, or a clear error when the issuer
// publishes none or publishes one that breaks the rule of Metadata's
// endpoints (https, or http only from an http:// issuer). The issuer the
// rule looks at is m.Issuer, which Discover has matched exactly to the
// configured one.
func (m *Metadata) IntrospectionURL() (string, error) {
	if m.IntrospectionEndpoint == "" {
		return "", fmt.Errorf("middleware: issuer %q publishes no introspection_endpoint; set the introspection URL", m.Issuer)
	}
	if err := checkMetadataEndpoint(m.Issuer, m.IntrospectionEndpoint); err != nil {
		return "", fmt.Errorf("middleware: discovered introspection_endpoint: %w", err)
	}
	return m.IntrospectionEndpoint, nil
}

// checkMetadataEndpoint checks an endpoint taken from the metadata of
// issuer, the configured issuer: an absolute https URL, or an absolute
// http URL when issuer is itself an http:// URL (a choice the operator
// made, e.g. a development server on loopback). So metadata fetched over
// TLS cannot send a token or a key request over plain http. The
// endpoints an operator configures (JWKSURL, an introspection client's
// Endpoint) are not checked by it.
func checkMetadataEndpoint(issuer, raw string) error {
	if err := checkHTTPURL(raw); err != nil {
		return err
	}
	u, _ := url.Parse(raw) // parsed by checkHTTPURL
	if u.Scheme == "http" {
		if iu, err := url.Parse(issuer); err != nil || iu.Scheme != "http" {
			return fmt.Errorf("%q is plain http from an https issuer's metadata (%q): it must be an absolute https URL", raw, issuer)
		}
	}
	return nil
}

// metadataJWKSURI returns the jwks_uri of md, the metadata of issuer, or
// why it cannot be used.
func metadataJWKSURI(issuer string, md *Metadata) (string, error) {
	if md.JWKSURI == "" {
		return "", fmt.Errorf("middleware: issuer %q publishes no jwks_uri; set JWKSURL", issuer)
	}
	if err := checkMetadataEndpoint(issuer, md.JWKSURI); err != nil {
		return "", fmt.Errorf("middleware: discovered jwks_uri: %w", err)
	}
	return md.JWKSURI, nil
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
	md, _, err := discoverAt(ctx, client, issuer, timeout, "")
	return md, err
}

// discoverAt is discover that also returns the location the metadata was
// found at. A non-empty at (such a location) is the only one tried.
func discoverAt(ctx context.Context, client *http.Client, issuer string, timeout time.Duration, at string) (*Metadata, string, error) {
	if client == nil {
		client = http.DefaultClient
	}
	locs, err := metadataLocations(issuer)
	if err != nil {
		return nil, "", err
	}
	if at != "" {
		locs = []string{at}
	}
	var errs []error
	for _, loc := range locs {
		md, err := fetchMetadata(ctx, client, loc, timeout)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if md.Issuer != issuer {
			return nil, "", fmt.Errorf("middleware: metadata at %s names issuer %q, want exactly %q", loc, md.Issuer, issuer)
		}
		return md, loc, nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	// One line: this error is what a program prints when it cannot start.
	return nil, "", fmt.Errorf("middleware: discovery for issuer %q failed: %s", issuer, strings.Join(msgs, "; "))
}

// metadataLocations returns where Discover looks for issuer's metadata,
// in its order: the OpenID Connect location, then the RFC 8414 one.
func metadataLocations(issuer string) ([]string, error) {
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("middleware: issuer %q is not an http(s) URL without query or fragment", issuer)
	}
	oidc := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	rfc8414 := u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + strings.TrimSuffix(u.EscapedPath(), "/")
	return []string{oidc, rfc8414}, nil
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
	if err := checkNoDowngrade(req, resp); err != nil {
		return nil, err
	}
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

// checkNoDowngrade refuses the response to a request for an https URL
// that redirects took to another scheme: an http.Client follows a
// redirect from https to plain http (the default one does), and the
// answer from there, metadata or keys, could be anyone's on the network
// path. Only the response is refused: a metadata or key request carries
// no secret.
func checkNoDowngrade(req *http.Request, resp *http.Response) error {
	if req.URL.Scheme == "https" && resp.Request != nil && resp.Request.URL.Scheme != "https" {
		return fmt.Errorf("GET %s: redirected to plain http (%s); refused", req.URL, resp.Request.URL.Redacted())
	}
	return nil
}
