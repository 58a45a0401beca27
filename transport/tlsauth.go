package transport

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// ErrKeyMismatch reports a TLS peer whose certificate key is not the key
// pinned for it.
var ErrKeyMismatch = errors.New("transport: peer certificate key does not match pinned key")

// tlsServerName is a fixed SNI value. Names are not part of our identity
// model (keys are), but sending a constant avoids leaking anything.
const tlsServerName = "braid"

// newCertificate builds a self-signed certificate for key. Only the public
// key inside matters to our peers; the certificate is just the container
// TLS requires to carry it.
func newCertificate(key ed25519.PrivateKey) (tls.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("transport: certificate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: tlsServerName},
		DNSNames:              []string{tlsServerName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(100 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("transport: create certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("transport: parse own certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// peerKey extracts the ed25519 key from the remote leaf certificate. TLS 1.3
// has already verified the remote's CertificateVerify signature with this
// key, so the remote provably holds the private key.
func peerKey(cs tls.ConnectionState) (ed25519.PublicKey, error) {
	if len(cs.PeerCertificates) == 0 {
		return nil, errors.New("transport: peer presented no certificate")
	}
	pk, ok := cs.PeerCertificates[0].PublicKey.(ed25519.PublicKey)
	if !ok || len(pk) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("transport: peer certificate key is %T, want ed25519", cs.PeerCertificates[0].PublicKey)
	}
	return pk, nil
}

// dialTLSConfig is the config for connections we initiate to a server whose
// key is pinned to want. Chain verification is disabled because there is no
// CA; VerifyConnection runs regardless of InsecureSkipVerify and enforces the
// pin, aborting the handshake on mismatch.
func dialTLSConfig(cert tls.Certificate, want ed25519.PublicKey) *tls.Config {
	want = append(ed25519.PublicKey(nil), want...)
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{cert},
		ServerName:         tlsServerName,
		InsecureSkipVerify: true, // replaced by key pinning below
		VerifyConnection: func(cs tls.ConnectionState) error {
			got, err := peerKey(cs)
			if err != nil {
				return err
			}
			if !got.Equal(want) {
				return ErrKeyMismatch
			}
			return nil
		},
	}
}

// acceptTLSConfig is the config for inbound connections. The acceptor does
// not know who is calling until the hello frame, so here it only requires a
// client certificate carrying an ed25519 key; the key is checked against the
// claimed identity after the hello. Session tickets are disabled so every
// connection performs a full handshake with a fresh proof of key possession.
func acceptTLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{cert},
		ClientAuth:             tls.RequireAnyClientCert,
		SessionTicketsDisabled: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := peerKey(cs)
			return err
		},
	}
}
