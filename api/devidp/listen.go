package devidp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"text/tabwriter"
)

// ErrNonLoopback is returned by Listen for an address other machines could
// reach when Config.AllowNonLoopback is off.
var ErrNonLoopback = errors.New("devidp: refusing a non-loopback listen address (this server's secrets are public); set AllowNonLoopback to override")

// Listen opens cfg.ListenAddr (default 127.0.0.1:9000), refusing any address
// that is not loopback unless cfg.AllowNonLoopback.
func Listen(ctx context.Context, cfg Config) (net.Listener, error) {
	cfg = cfg.withDefaults()
	if !cfg.AllowNonLoopback {
		if err := checkLoopback(ctx, cfg.ListenAddr); err != nil {
			return nil, err
		}
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("devidp: %w", err)
	}
	return ln, nil
}

func checkLoopback(ctx context.Context, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("devidp: listen address %q: %w", addr, err)
	}
	if host == "" {
		return fmt.Errorf("%w: %q listens on every interface", ErrNonLoopback, addr)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return fmt.Errorf("%w: %q", ErrNonLoopback, addr)
		}
		return nil
	}
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("devidp: listen address %q: %w", addr, err)
	}
	for _, ip := range ips {
		if !ip.IP.IsLoopback() {
			return fmt.Errorf("%w: %q resolves to %s", ErrNonLoopback, addr, ip.IP)
		}
	}
	return nil
}

// IssuerFor returns http://localhost:PORT for a listener's address, the
// issuer cmd/devidp uses when Config.Issuer is empty.
func IssuerFor(addr net.Addr) string {
	if tcp, ok := addr.(*net.TCPAddr); ok {
		return fmt.Sprintf("http://localhost:%d", tcp.Port)
	}
	return "http://" + addr.String()
}

// WriteBanner writes the loud start-up notice: development only, the issuer,
// the demo users with their passwords and the clients with their secrets.
// It is the one place secrets are printed, by design: they are development
// defaults that the other programs must be configured with.
func WriteBanner(w io.Writer, cfg Config) error {
	cfg = cfg.withDefaults()
	line := strings.Repeat("=", 72)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\n", line)
	fmt.Fprintf(tw, "  DEVELOPMENT ONLY: Tollgate devidp. Public passwords and secrets,\n")
	fmt.Fprintf(tw, "  in-memory sessions. NEVER use it in production.\n")
	fmt.Fprintf(tw, "%s\n", line)
	fmt.Fprintf(tw, "issuer\t%s\n", cfg.Issuer)
	fmt.Fprintf(tw, "discovery\t%s/.well-known/openid-configuration\n", cfg.Issuer)
	format := "jwt"
	if cfg.OpaqueAccessTokens {
		format = "opaque"
	}
	fmt.Fprintf(tw, "access tokens\t%s, aud %s, ttl %s\n", format, cfg.Audience, cfg.AccessTokenTTL)
	fmt.Fprintf(tw, "\nusers\tpassword\tsecond-step code\tname\temail\n")
	for _, u := range cfg.Users {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", u.Username, u.Password, u.SecondFactor, u.Name, u.Email)
	}
	fmt.Fprintf(tw, "\nacr values\t%s (password), %s (password, then the code: asked for with acr_values)\n", ACRPassword, ACRTwoFactor)
	fmt.Fprintf(tw, "\nclients\tsecret\tredirect URIs\tpost-logout redirect URIs\n")
	for _, c := range cfg.Clients {
		secret := c.Secret
		if c.Public {
			secret = "(public: none, PKCE)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", c.ID, secret, orNone(c.RedirectURIs, "(introspection only)"), orNone(c.PostLogoutRedirectURIs, "-"))
	}
	fmt.Fprintf(tw, "%s\n", line)
	return tw.Flush()
}

func orNone(v []string, none string) string {
	if len(v) == 0 {
		return none
	}
	return strings.Join(v, ",")
}
