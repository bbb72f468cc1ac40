//go:build !unix

package main

func applyReproUmask() {}
