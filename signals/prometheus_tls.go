package signals

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	promconfig "github.com/prometheus/common/config"
)

// tlsFiles are the TLS settings an error message points at.
type tlsFiles struct {
	https         bool
	ca, cert, key string
	// asked records that the server asked for a client certificate in a
	// handshake and has not answered a request since. Under TLS 1.3 a
	// server checks the certificate only after the client's side of the
	// handshake is done, and its refusal often reaches the client as a
	// dropped connection rather than as its alert: this tells that case
	// from a server that went down after answering.
	asked *atomic.Bool
}

// answered clears asked whenever the server answers, whatever the status.
type answered struct {
	next  http.RoundTripper
	asked *atomic.Bool
}

func (a answered) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := a.next.RoundTrip(r)
	if err == nil {
		a.asked.Store(false)
	}
	return resp, err
}

// newTLSConfig is Prometheus's own TLS configuration with the client
// certificate callback wrapped to note that the server asked for one.
func (f tlsFiles) newTLSConfig(ctx context.Context, cfg *promconfig.TLSConfig, opts ...promconfig.TLSConfigOption) (*tls.Config, error) {
	tc, err := promconfig.NewTLSConfigWithContext(ctx, cfg, opts...)
	if err != nil {
		return nil, err
	}
	get := tc.GetClientCertificate
	tc.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		f.asked.Store(true)
		if get == nil {
			// No client certificate configured: send none, as
			// crypto/tls does without a callback.
			return &tls.Certificate{}, nil
		}
		return get(cri)
	}
	return tc, nil
}

// tlsError is a TLS failure explained: what went wrong and which setting
// to change. It unwraps to the library's error.
type tlsError struct {
	msg   string
	cause error
}

func (e *tlsError) Error() string { return e.msg }
func (e *tlsError) Unwrap() error { return e.cause }

// describe explains err if it is a TLS failure against an https server, or
// returns nil. A refused client certificate shows either as the server's
// alert or, under TLS 1.3, as the connection closing under the first
// request after the server asked for a certificate.
func (f tlsFiles) describe(err error) error {
	if !f.https {
		return nil
	}
	var verr *tls.CertificateVerificationError
	if errors.As(err, &verr) {
		return &tlsError{msg: f.serverCertMessage(verr), cause: err}
	}
	var perr *fs.PathError
	if errors.As(err, &perr) {
		for _, file := range []struct{ name, env string }{{f.ca, EnvPrometheusCAFile}, {f.cert, EnvPrometheusCertFile}, {f.key, EnvPrometheusKeyFile}} {
			if file.name != "" && perr.Path == file.name {
				return &tlsError{cause: err, msg: fmt.Sprintf("reading the file %s names (%v): it is read again for every request, so it must stay in place; replace it by a rename when rotating, never delete it first", file.env, perr)}
			}
		}
		return nil
	}
	var oerr *net.OpError
	if errors.As(err, &oerr) && oerr.Op == "remote error" && isClientCertAlert(oerr.Err) {
		return &tlsError{cause: err, msg: fmt.Sprintf("Prometheus refused the TLS connection (%v): %s", oerr, f.clientCertAdvice())}
	}
	if f.asked.Load() && droppedConnection(err) {
		return &tlsError{cause: err, msg: fmt.Sprintf("Prometheus asked for a client certificate (mutual TLS), then dropped the connection before answering (%v), which is how it refuses one — unless it was stopping or restarting just then: %s", unwrapURL(err), f.clientCertAdvice())}
	}
	return nil
}

// droppedConnection says err is the server closing the connection under
// the first request: the forms a TLS 1.3 refusal takes when the alert is
// lost. The HTTP/2 transport drops the cause and keeps only an unexported
// error, matched by its text.
func droppedConnection(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		unwrapURL(err).Error() == "http2: client conn could not be established"
}

// isClientCertAlert says err is one of the TLS alerts a server sends when
// it does not accept the client's certificate, or wants one and got none.
func isClientCertAlert(err error) bool {
	for _, a := range [...]tls.AlertError{
		42,  // bad_certificate
		43,  // unsupported_certificate
		44,  // certificate_revoked
		45,  // certificate_expired
		46,  // certificate_unknown
		48,  // unknown_ca
		116, // certificate_required
	} {
		// The alert type crypto/tls returns for a TCP connection is not
		// exported; it reads as the exported AlertError of the same code.
		if err.Error() == a.Error() {
			return true
		}
	}
	return false
}

// clientCertAdvice says what to configure when the server refused
// canarybot's client certificate, or its lack of one.
func (f tlsFiles) clientCertAdvice() string {
	if f.cert == "" {
		return fmt.Sprintf("canarybot has none to send: set %s and %s to the PEM certificate and key of a client certificate signed by a CA in the server's client_ca_file",
			EnvPrometheusCertFile, EnvPrometheusKeyFile)
	}
	return fmt.Sprintf("it did not accept canarybot's client certificate %s (%s=%s): give a certificate signed by a CA in the server's client_ca_file, valid now, with client authentication among its uses, or add its CA there",
		describeCertFile(f.cert), EnvPrometheusCertFile, f.cert)
}

// serverCertMessage explains why the server's certificate was not trusted.
func (f tlsFiles) serverCertMessage(verr *tls.CertificateVerificationError) string {
	var issued string
	if len(verr.UnverifiedCertificates) > 0 {
		c := verr.UnverifiedCertificates[0]
		issued = fmt.Sprintf(" (subject %q, issued by %q)", c.Subject.CommonName, c.Issuer.CommonName)
	}
	trusted := fmt.Sprintf("%s=%s", EnvPrometheusCAFile, f.ca)
	if f.ca == "" {
		trusted = "the system's CAs, as " + EnvPrometheusCAFile + " is not set"
	}
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	switch {
	case errors.As(verr.Err, &unknown):
		return fmt.Sprintf("Prometheus's TLS certificate%s is not signed by a CA canarybot trusts (%v); it trusts %s: set %s to the PEM bundle of the CA that signed the server's certificate",
			issued, verr.Err, trusted, EnvPrometheusCAFile)
	case errors.As(verr.Err, &hostname):
		return fmt.Sprintf("Prometheus's TLS certificate%s does not name the host in PROMETHEUS_URL (%v): use a host name the certificate lists, or have the certificate reissued for this one",
			issued, verr.Err)
	case errors.As(verr.Err, &invalid) && invalid.Reason == x509.Expired:
		return fmt.Sprintf("Prometheus's TLS certificate%s is expired or not yet valid (%v): renew the server's certificate", issued, verr.Err)
	}
	return fmt.Sprintf("Prometheus's TLS certificate%s could not be verified (%v); canarybot trusts %s", issued, verr.Err, trusted)
}

// describeCertFile names the certificate in a PEM file by subject, issuer
// and expiry, as read now; the file is not secret (its key is).
func describeCertFile(name string) string {
	b, err := os.ReadFile(name)
	if err != nil {
		return "(unreadable now: " + err.Error() + ")"
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return "(no PEM block)"
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "(unparsable: " + err.Error() + ")"
	}
	s := fmt.Sprintf("%q issued by %q", c.Subject.CommonName, c.Issuer.CommonName)
	if now := time.Now(); now.After(c.NotAfter) {
		s += ", expired " + c.NotAfter.UTC().Format(time.RFC3339)
	}
	return s
}

// unwrapURL drops the url.Error layer, whose text repeats the method and
// URL the message's prefix names already.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
