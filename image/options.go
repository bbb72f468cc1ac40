package image

import (
	"context"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/mlenv/mlenv/internal/netx"
)

// Options are the registry settings every read and write uses. The zero
// value is what the CLI wants: credentials from the Docker config and
// credential helpers, and netx's default timeouts.
type Options struct {
	// Keychain supplies credentials; nil means authn.DefaultKeychain.
	Keychain authn.Keychain
	// Timeouts bound every phase of each HTTP exchange with a registry
	// (zero fields take netx.DefaultTimeouts), so that a registry that
	// hangs ends the command with an error naming the URL and the phase.
	Timeouts netx.Timeouts
	// Remote is appended after mlenv's own options (tests shorten the
	// retry backoff with remote.WithRetryBackoff, for instance).
	Remote []remote.Option
}

// RemoteOptions are the go-containerregistry options for one call: ctx,
// the keychain and a transport with timeouts. attest passes them on to
// cosign's registry code, so that signatures travel the same way.
func (o Options) RemoteOptions(ctx context.Context) []remote.Option {
	kc := o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(kc),
		remote.WithTransport(netx.Transport(o.Timeouts)),
	}
	return append(opts, o.Remote...)
}
