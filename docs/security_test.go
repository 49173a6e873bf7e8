// Package docs holds the project's documents; its test keeps
// SECURITY.md's map of findings to code and tests true as the code moves.
package docs

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var errNotDeclared = errors.New("not declared in its package")

// root is the repository, seen from this package's directory.
const root = ".."

// pkgDirs maps the package names SECURITY.md uses in option names
// (hub.Options.CheckOrigin) to their directories.
var pkgDirs = map[string]string{
	"auth": "auth", "guard": "guard", "hub": "hub", "room": "room", "sanitize": "sanitize",
	"metrics": "metrics", "client": "client", "protocol": "protocol", "redis": "adapter/redis",
	"memory": "adapter/memory", "adapter": "adapter", "gateway": "gateway",
}

var (
	backticked = regexp.MustCompile("`([^`]+)`")
	goName     = regexp.MustCompile(`^(Test|Example|Fuzz|Benchmark)\w*(/\S+)?$`)
	apiName    = regexp.MustCompile(`^([a-z]+)\.([A-Z]\w*)(?:\.([A-Z]\w*))?$`)
	pathLike   = regexp.MustCompile(`^[\w.-]+(/[\w.-]+)*(\.go|\.yml|\.mjs|\.js|\.md|\.json)$|^[\w.-]+(/[\w.-]+)+$`)
)

// TestSecurityMapCitesWhatExists checks every row of SECURITY.md's tables:
// each file or directory it names exists; each test, example or fuzz
// target it names is a function of the file named before it, and each
// subtest's name appears in that file; and each option or exported name
// (hub.Options.CheckOrigin, auth.ErrNoKey) exists in its package.
func TestSecurityMapCitesWhatExists(t *testing.T) {
	doc, err := os.ReadFile("SECURITY.md")
	if err != nil {
		t.Fatal(err)
	}
	apis := apiIndex{}
	rows := 0
	for line := range strings.SplitSeq(string(doc), "\n") {
		cells := splitRow(line)
		if len(cells) != 4 || strings.HasPrefix(cells[0], "---") || cells[0] == "finding" {
			continue
		}
		rows++
		finding := cells[0]
		for _, q := range append(quoted(cells[1]), quoted(cells[2])...) {
			if err := apis.check(q); err != nil {
				t.Errorf("%s: %s: %v", finding, q, err)
			}
			if pathLike.MatchString(q) {
				if _, err := os.Stat(filepath.Join(root, q)); err != nil {
					t.Errorf("%s: %s does not exist", finding, q)
				}
			}
		}
		checkTests(t, finding, cells[3])
	}
	if rows < 40 {
		t.Fatalf("read %d rows; the tables' layout must have changed", rows)
	}
}

// checkTests checks a tests cell: `file`: `TestA`, `TestB/sub`; `file2`...
func checkTests(t *testing.T, finding, cell string) {
	t.Helper()
	file, src := "", ""
	for _, q := range quoted(cell) {
		switch {
		case goName.MatchString(q):
			if file == "" || !strings.HasSuffix(file, ".go") {
				t.Errorf("%s: %s follows no Go file", finding, q)
				continue
			}
			name, sub, _ := strings.Cut(q, "/")
			if !strings.Contains(src, "func "+name+"(") {
				t.Errorf("%s: %s has no func %s", finding, file, name)
			}
			for seg := range strings.SplitSeq(sub, "/") {
				if seg != "" && !strings.Contains(src, seg) && !strings.Contains(src, strings.ReplaceAll(seg, "_", " ")) {
					t.Errorf("%s: %s has no subtest %q of %s", finding, file, seg, name)
				}
			}
		case pathLike.MatchString(q):
			file = q
			b, err := os.ReadFile(filepath.Join(root, q))
			if err != nil {
				if _, derr := os.Stat(filepath.Join(root, q)); derr != nil {
					t.Errorf("%s: test file %s does not exist", finding, q)
				}
			}
			src = string(b)
		}
	}
}

// splitRow returns the cells of a table row, or nil for any other line. A
// '|' inside backticks does not split.
func splitRow(line string) []string {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "|") || !strings.HasSuffix(line, "|") {
		return nil
	}
	var cells []string
	var cur strings.Builder
	code := false
	for _, r := range line[1 : len(line)-1] {
		switch {
		case r == '`':
			code = !code
		case r == '|' && !code:
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
			continue
		}
		cur.WriteRune(r)
	}
	return append(cells, strings.TrimSpace(cur.String()))
}

func quoted(cell string) []string {
	var out []string
	for _, m := range backticked.FindAllStringSubmatch(cell, -1) {
		out = append(out, m[1])
	}
	return out
}

// apiIndex holds, per package directory, its exported declarations: top
// level names, and the fields and methods of each type ("Type.Field").
type apiIndex map[string]map[string]bool

// check reports whether name, such as hub.Options.CheckOrigin, exists. Names
// of packages outside pkgDirs are not checked.
func (x apiIndex) check(name string) error {
	m := apiName.FindStringSubmatch(name)
	if m == nil {
		return nil
	}
	dir, ok := pkgDirs[m[1]]
	if !ok {
		return nil
	}
	decls, err := x.load(dir)
	if err != nil {
		return err
	}
	key := m[2]
	if m[3] != "" {
		key += "." + m[3]
	}
	if !decls[key] {
		return errNotDeclared
	}
	return nil
}

func (x apiIndex) load(dir string) (map[string]bool, error) {
	if d, ok := x[dir]; ok {
		return d, nil
	}
	fset := token.NewFileSet()
	matches, err := filepath.Glob(filepath.Join(root, dir, "*.go"))
	if err != nil {
		return nil, err
	}
	decls := map[string]bool{}
	for _, path := range matches {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		for _, d := range f.Decls {
			declare(decls, d)
		}
	}
	x[dir] = decls
	return decls, nil
}

// declare records the exported names d declares.
func declare(decls map[string]bool, d ast.Decl) {
	switch d := d.(type) {
	case *ast.FuncDecl:
		if d.Recv == nil {
			decls[d.Name.Name] = true
			return
		}
		typ := d.Recv.List[0].Type
		if star, ok := typ.(*ast.StarExpr); ok {
			typ = star.X
		}
		if idx, ok := typ.(*ast.IndexExpr); ok {
			typ = idx.X
		}
		if id, ok := typ.(*ast.Ident); ok {
			decls[id.Name+"."+d.Name.Name] = true
		}
	case *ast.GenDecl:
		for _, spec := range d.Specs {
			switch s := spec.(type) {
			case *ast.ValueSpec:
				for _, n := range s.Names {
					decls[n.Name] = true
				}
			case *ast.TypeSpec:
				decls[s.Name.Name] = true
				if st, ok := s.Type.(*ast.StructType); ok {
					for _, fld := range st.Fields.List {
						for _, n := range fld.Names {
							decls[s.Name.Name+"."+n.Name] = true
						}
					}
				}
			}
		}
	}
}
