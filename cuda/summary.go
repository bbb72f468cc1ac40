package cuda

// Summary is the GPU code of a set of files.
type Summary struct {
	// SASS is the union of SASS architectures, PTX of PTX targets.
	SASS []string `json:"sass"`
	PTX  []string `json:"ptx"`
	// Missing lists, per file, SASS architectures other files have and it
	// lacks: a kernel from it will fail (or JIT) where the others run.
	Missing map[string][]string `json:"missing,omitempty"`
}

// Summarize unions the architectures of per-file entries.
func Summarize(files map[string][]Entry) Summary {
	sass, ptx := map[string]bool{}, map[string]bool{}
	for _, entries := range files {
		for _, e := range entries {
			switch {
			case e.Relocatable:
			case e.Kind == "sass":
				sass[e.Arch] = true
			default:
				ptx[e.Arch] = true
			}
		}
	}
	s := Summary{SASS: SortedTargets(sass), PTX: SortedTargets(ptx)}
	for path, entries := range files {
		have := map[string]bool{}
		for _, e := range entries {
			if e.Kind == "sass" && !e.Relocatable {
				have[e.Arch] = true
			}
		}
		if len(have) == 0 {
			continue
		}
		var missing []string
		for _, a := range s.SASS {
			if !have[a] {
				missing = append(missing, a)
			}
		}
		if len(missing) > 0 && len(missing) < len(s.SASS) {
			if s.Missing == nil {
				s.Missing = map[string][]string{}
			}
			s.Missing[path] = missing
		}
	}
	return s
}

// SortedTargets lists a set of targets in architecture order.
func SortedTargets(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for a := range set {
		out = append(out, a)
	}
	// Numeric order: sm_80 < sm_90 < sm_100.
	sortByNumber(out)
	return out
}

func sortByNumber(list []string) {
	num := func(s string) (int, string) {
		t, err := ParseTarget(s)
		if err != nil {
			return 0, s
		}
		return t.Major*10 + t.Minor, t.Suffix
	}
	for i := 1; i < len(list); i++ {
		for j := i; j > 0; j-- {
			a, as := num(list[j-1])
			b, bs := num(list[j])
			if a < b || a == b && as <= bs {
				break
			}
			list[j-1], list[j] = list[j], list[j-1]
		}
	}
}
