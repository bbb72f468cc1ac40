// Command gen regenerates the offline example's committed inputs: a small
// pure-Python wheel with a console script and a small .deb. Output is
// byte-identical on every run (fixed timestamps), so the example's pinned
// digest holds.
//
//	go run ./examples/minimal/gen
package main

import (
	"archive/tar"
	"log"
	"os"
	"path/filepath"

	"github.com/mlenv/mlenv/internal/testutil"
)

// HelloWheel is the example wheel; tests build the same one.
var HelloWheel = testutil.Wheel{
	Name: "hello_mlenv", Version: "0.1.0",
	Files: map[string]string{
		"hello_mlenv/__init__.py":                              "def main():\n    print(\"hello from mlenv\")\n    return 0\n",
		"hello_mlenv-0.1.0.data/data/share/hello-mlenv/README": "data file installed under the prefix\n",
	},
	EntryPoints: "[console_scripts]\nhello-mlenv = hello_mlenv:main\n",
}

// HelloDeb is the example deb.
var HelloDeb = testutil.Deb{
	Package: "mlenv-hello-data", Version: "1.0-1", Arch: "all",
	Files: []testutil.TarEntry{
		{Name: "./", Type: tar.TypeDir},
		{Name: "./usr/", Type: tar.TypeDir},
		{Name: "./usr/share/", Type: tar.TypeDir},
		{Name: "./usr/share/mlenv-hello/", Type: tar.TypeDir},
		{Name: "./usr/share/mlenv-hello/greeting.txt", Body: "hello from a deb\n"},
		{Name: "./usr/share/mlenv-hello/link.txt", Type: tar.TypeSymlink, Linkname: "greeting.txt"},
	},
}

func main() {
	dir := "examples/minimal"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			log.Fatal(err)
		}
		log.Printf("wrote %s", filepath.Join(dir, name))
	}
	write(HelloWheel.Filename(), HelloWheel.Bytes())
	write(HelloDeb.Filename(), HelloDeb.Bytes())
}
