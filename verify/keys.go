package verify

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// maxKeyFile bounds a public key file (a PEM bundle of many keys is still
// a few kilobytes).
const maxKeyFile = 1 << 20

// Key is one trusted public key.
type Key struct {
	// Source is the file it came from (and its position in a bundle).
	Source string
	// ID is "sha256:<hex>" of the key's DER encoding, for messages and
	// for pinning in a policy.
	ID       string
	Verifier signature.Verifier
}

// LoadKeys reads cosign public key files; each may be a PEM bundle of
// several keys. Any one key suffices to trust a statement (rotation),
// unless the policy pins keys per statement type.
func LoadKeys(paths []string) ([]Key, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("no public key: pass --key cosign.pub (repeat it, or use a PEM bundle, for several)")
	}
	var keys []Key
	for _, p := range paths {
		ks, err := loadKeyFile(p)
		if err != nil {
			return nil, err
		}
		keys = append(keys, ks...)
	}
	return keys, nil
}

func loadKeyFile(path string) ([]Key, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	if fi.Size() > maxKeyFile {
		return nil, fmt.Errorf("public key %s: %d bytes, more than a key file holds (limit %d)", path, fi.Size(), maxKeyFile)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	var keys []Key
	rest := raw
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		src := path
		if n > 1 || len(rest) > 0 {
			src = fmt.Sprintf("%s#%d", path, n)
		}
		if block.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("public key %s: PEM block of type %q; expected PUBLIC KEY (cosign.pub), not a private key or certificate", src, block.Type)
		}
		pub, err := cryptoutils.UnmarshalPEMToPublicKey(pem.EncodeToMemory(block))
		if err != nil {
			return nil, fmt.Errorf("public key %s: %w", src, err)
		}
		v, err := signature.LoadVerifier(pub, crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("public key %s: %w", src, err)
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return nil, fmt.Errorf("public key %s: %w", src, err)
		}
		sum := sha256.Sum256(der)
		keys = append(keys, Key{Source: src, ID: "sha256:" + hex.EncodeToString(sum[:]), Verifier: v})
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("public key %s: no PEM PUBLIC KEY block in it", path)
	}
	return keys, nil
}
