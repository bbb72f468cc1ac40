package cas

import (
	"crypto/rand"
	"testing"
)

// The cost of checking one cached 64 MiB layer before use: by its seal
// (two stats and a small read) against re-hashing it.
func benchmarkVerify(b *testing.B, full bool) {
	c := &Cache{Dir: b.TempDir(), FullVerify: full}
	body := make([]byte, 64<<20)
	rand.Read(body)
	sum := putBlob(b, c, body)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.Verify(sum); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifySealed(b *testing.B) { benchmarkVerify(b, false) }
func BenchmarkVerifyFull(b *testing.B)   { benchmarkVerify(b, true) }
