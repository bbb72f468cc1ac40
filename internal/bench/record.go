package main

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

func recordLine(path string, body []byte) string {
	sum := sha256.Sum256(body)
	return fmt.Sprintf("%s,sha256=%s,%d\n", path, base64.RawURLEncoding.EncodeToString(sum[:]), len(body))
}
