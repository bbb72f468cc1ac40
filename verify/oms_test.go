package verify_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature/dsse"

	"github.com/mlenv/mlenv/attest"
	"github.com/mlenv/mlenv/internal/testutil"
	"github.com/mlenv/mlenv/verify"
)

type omsResource struct {
	Name      string `json:"name"`
	Algorithm string `json:"algorithm"`
	Digest    string `json:"digest"`
}

// writeOMS signs a model folder the way sigstore's model-signing tool
// does with a key (its OMS format, spec section 5-6): an in-toto
// statement listing every file in predicate.resources, one subject whose
// digest is sha256 over the raw resource digests in name order, in a
// DSSE envelope inside a Sigstore bundle v0.3 with a public key hint.
// edit, when set, changes the resources before signing.
func writeOMS(t *testing.T, model, key string, edit func([]omsResource)) string {
	t.Helper()
	var res []omsResource
	filepath.Walk(model, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || fi.Name() == "model.sig" || fi.Name() == ".gitattributes" {
			return err
		}
		b, _ := os.ReadFile(p)
		sum := sha256.Sum256(b)
		rel, _ := filepath.Rel(model, p)
		res = append(res, omsResource{Name: filepath.ToSlash(rel), Algorithm: "sha256", Digest: hex.EncodeToString(sum[:])})
		return nil
	})
	sort.Slice(res, func(i, j int) bool { return res[i].Name < res[j].Name })
	if edit != nil {
		edit(res)
	}
	root := sha256.New()
	for _, r := range res {
		raw, _ := hex.DecodeString(r.Digest)
		root.Write(raw)
	}
	st := map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []any{map[string]any{"name": filepath.Base(model), "digest": map[string]string{"sha256": hex.EncodeToString(root.Sum(nil))}}},
		"predicateType": verify.OMSPredicateType,
		"predicate": map[string]any{
			"serialization": map[string]any{"method": "files", "hash_type": "sha256", "allow_symlinks": false, "ignore_paths": []string{".git", ".gitattributes", ".github", ".gitignore", "model.sig"}},
			"resources":     res,
		},
	}
	payload, _ := json.Marshal(st)
	sv, err := attest.LoadSigner(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	envJSON, err := dsse.WrapSigner(sv, "application/vnd.in-toto+json").SignMessage(bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]any
	json.Unmarshal(envJSON, &env)
	bundle := map[string]any{
		"mediaType":            "application/vnd.dev.sigstore.bundle.v0.3+json",
		"verificationMaterial": map[string]any{"publicKey": map[string]string{"hint": "0123abcd"}},
		"dsseEnvelope":         env,
	}
	b, _ := json.MarshalIndent(bundle, "", "  ")
	sig := filepath.Join(model, "model.sig")
	if err := os.WriteFile(sig, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return sig
}

func omsModel(t *testing.T) string {
	m := filepath.Join(t.TempDir(), "model")
	testutil.WriteSafetensors(t, filepath.Join(m, "model.safetensors"), map[string][]int{"w": {16, 16}}, 1)
	os.WriteFile(filepath.Join(m, "config.json"), []byte(`{"a":1}`), 0o644)
	os.MkdirAll(filepath.Join(m, "tokenizer"), 0o755)
	os.WriteFile(filepath.Join(m, "tokenizer", "vocab.txt"), []byte("a\n"), 0o644)
	os.WriteFile(filepath.Join(m, ".gitattributes"), []byte("*.safetensors lfs\n"), 0o644)
	return m
}

func omsVerifier(t *testing.T, pub string) *verify.Verifier {
	ks, err := verify.LoadKeys([]string{pub})
	if err != nil {
		t.Fatal(err)
	}
	v, err := verify.NewVerifier(ks, verify.DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestOMSKeyBasedSignature(t *testing.T) {
	t.Setenv("COSIGN_PASSWORD", "pw")
	key, pub, err := attest.GenerateKeyPair(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	_, otherPub, _ := attest.GenerateKeyPair(t.TempDir(), false)
	v := omsVerifier(t, pub)
	m := omsModel(t)
	writeOMS(t, m, key, nil)
	res, err := v.VerifyOMS(context.Background(), m, "")
	if err != nil {
		t.Fatal(err)
	}
	wantModelDecision(t, res, verify.Allow)
	wantModelCheck(t, res, "oms.files", verify.Pass, "3 files")

	// Signed by a key not trusted.
	res, _ = omsVerifier(t, otherPub).VerifyOMS(context.Background(), m, "")
	wantModelDecision(t, res, verify.Deny)
	wantModelCheck(t, res, "oms.signature", verify.Fail, "does not verify")

	// A statement whose file digest was changed (and signed so, with a
	// consistent root digest): the file on disk does not match.
	writeOMS(t, m, key, func(rs []omsResource) { rs[0].Digest = strings.Repeat("0", 64) })
	res, _ = v.VerifyOMS(context.Background(), m, "")
	wantModelDecision(t, res, verify.Deny)
	wantModelCheck(t, res, "oms.files", verify.Fail, "config.json: sha256")

	// The payload edited after signing: the signature no longer verifies.
	sig := writeOMS(t, m, key, nil)
	b, _ := os.ReadFile(sig)
	var bu map[string]any
	json.Unmarshal(b, &bu)
	env := bu["dsseEnvelope"].(map[string]any)
	p, _ := base64.StdEncoding.DecodeString(env["payload"].(string))
	env["payload"] = base64.StdEncoding.EncodeToString(bytes.Replace(p, []byte(`"config.json"`), []byte(`"config.jsom"`), 1))
	b, _ = json.Marshal(bu)
	os.WriteFile(sig, b, 0o644)
	res, _ = v.VerifyOMS(context.Background(), m, "")
	wantModelCheck(t, res, "oms.signature", verify.Fail, "does not verify")

	// A file added after signing is an unsigned file.
	writeOMS(t, m, key, nil)
	os.WriteFile(filepath.Join(m, "extra.bin"), []byte("x"), 0o644)
	res, _ = v.VerifyOMS(context.Background(), m, "")
	wantModelCheck(t, res, "oms.files", verify.Fail, "extra.bin: not in the statement")
}

// Keyless (Fulcio certificate + Rekor entry) is refused with the reason.
func TestOMSKeylessSaysWhatItNeeds(t *testing.T) {
	t.Setenv("COSIGN_PASSWORD", "pw")
	_, pub, _ := attest.GenerateKeyPair(t.TempDir(), false)
	m := omsModel(t)
	os.WriteFile(filepath.Join(m, "model.sig"), []byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"certificate":{"rawBytes":"MII="},"tlogEntries":[{}]},"dsseEnvelope":{"payload":"e30=","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"AA=="}]}}`), 0o644)
	_, err := omsVerifier(t, pub).VerifyOMS(context.Background(), m, "")
	if err == nil || !strings.Contains(err.Error(), "Fulcio") || !strings.Contains(err.Error(), "Rekor") {
		t.Fatalf("got %v", err)
	}
}

// A model folder whose model.sig is a named pipe (a hostile download) is
// refused at once; verify used to wait forever for a writer.
func TestOMSSignatureFIFOIsRefused(t *testing.T) {
	t.Setenv("COSIGN_PASSWORD", "pw")
	_, pub, _ := attest.GenerateKeyPair(t.TempDir(), false)
	m := omsModel(t)
	if err := syscall.Mkfifo(filepath.Join(m, "model.sig"), 0o644); err != nil {
		t.Skipf("cannot make a FIFO here: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := omsVerifier(t, pub).VerifyOMS(context.Background(), m, "")
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "model.sig is a named pipe (FIFO), not a regular file") {
			t.Fatalf("got %v, want model.sig refused as a named pipe", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("verify blocked on a model.sig FIFO")
	}
}

// TestOMSSignatureNamedByTheUserMayBeAPipe: --oms FILE names the
// signature; like every other file the user names (a lock, a host
// fingerprint), it may come through a pipe (--oms <(curl ...)). Only
// the default DIR/model.sig, found inside the model folder, must be a
// regular file.
func TestOMSSignatureNamedByTheUserMayBeAPipe(t *testing.T) {
	t.Setenv("COSIGN_PASSWORD", "pw")
	key, pub, _ := attest.GenerateKeyPair(t.TempDir(), false)
	m := omsModel(t)
	sig, err := os.ReadFile(writeOMS(t, m, key, nil))
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(m, "model.sig"))
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	go func() { w.Write(sig); w.Close() }()
	p := fmt.Sprintf("/dev/fd/%d", r.Fd())
	if _, err := os.Stat(p); err != nil {
		t.Skipf("no /dev/fd here: %v", err)
	}
	res, err := omsVerifier(t, pub).VerifyOMS(context.Background(), m, p)
	if err != nil {
		t.Fatalf("signature through a pipe: %v", err)
	}
	wantModelDecision(t, res, verify.Allow)
}
