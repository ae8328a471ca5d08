package conditionscheck

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

const root = "../.."

// writers are the packages that write conditions, as the table names them.
var writers = map[string]vmv1alpha1.Writer{"controllers": vmv1alpha1.WriterController, "hostagent": vmv1alpha1.WriterHostAgent}

// fileKinds says which kind's conditions each file writes; a file that starts writing
// conditions must be added here, which is the moment to check the table.
var fileKinds = map[string]string{
	"controllers/vmclone_controller.go":      "VMClone",
	"controllers/lifecycle.go":               "VMClone",
	"controllers/cloudinit.go":               "VMClone",
	"controllers/hostliveness_controller.go": "XenHost",
	"controllers/vmtemplate_controller.go":   "VMTemplate",
	"controllers/template_import.go":         "VMTemplate",
	"controllers/vmclonepool_controller.go":  "VMClonePool",
	"controllers/vmclaim_controller.go":      "VMClaim",
	"hostagent/clone_controller.go":          "VMClone",
	"hostagent/status.go":                    "VMClone",
	"hostagent/standby.go":                   "VMClone",
	"hostagent/guestdata.go":                 "VMClone",
	"hostagent/guest_status.go":              "VMClone",
	"hostagent/host_reporter.go":             "XenHost",
}

// wrapper is a function that sets a condition from its arguments: its callers are checked,
// not its body.
type wrapper func(args []ast.Expr) (typ, status, reason ast.Expr)

var wrappers = map[string]wrapper{
	// controllers: setCondition(s, type, status, reason, message); hostagent: s.setCondition(type, status, reason, message).
	"setCondition": func(a []ast.Expr) (ast.Expr, ast.Expr, ast.Expr) {
		if len(a) < 4 {
			return nil, nil, nil
		}
		n := len(a)
		return a[n-4], a[n-3], a[n-2]
	},
	// setClaimCondition(status, generation, type, status, reason, message).
	"setClaimCondition": func(a []ast.Expr) (ast.Expr, ast.Expr, ast.Expr) {
		if len(a) != 6 {
			return nil, nil, nil
		}
		return a[2], a[3], a[4]
	},
	// setUnscheduled(s, reason, message): Scheduled=False.
	"setUnscheduled": func(a []ast.Expr) (ast.Expr, ast.Expr, ast.Expr) {
		if len(a) != 3 {
			return nil, nil, nil
		}
		return sel("vmv1alpha1", "ConditionScheduled"), sel("metav1", "ConditionFalse"), a[1]
	},
}

func sel(pkg, name string) ast.Expr {
	return &ast.SelectorExpr{X: ast.NewIdent(pkg), Sel: ast.NewIdent(name)}
}

// write is one place that sets (or removes) a condition.
type write struct {
	pos   token.Position
	kind  string
	types values
	// pairs are the reasons written, each with the status written with it (unresolved when
	// set apart from the reason).
	pairs []pair
}

type pair struct{ status, reason values }

// values is what an expression can evaluate to, as far as a static reading tells.
type values struct {
	set     []string
	param   bool // a parameter of the enclosing function
	unknown bool // not a constant (a field of something read at run time)
	literal bool // spelt as a string literal
}

func (v values) resolved() bool { return !v.param && !v.unknown && len(v.set) > 0 }

func merge(a, b values) values {
	return values{set: append(append([]string(nil), a.set...), b.set...), param: a.param || b.param,
		unknown: a.unknown || b.unknown, literal: a.literal || b.literal}
}

// pkgSource is one parsed package with its constants.
type pkgSource struct {
	name   string
	fset   *token.FileSet
	files  map[string]*ast.File // by path relative to root
	consts map[string]ast.Expr
}

func parseDir(t *testing.T, fset *token.FileSet, dir string) *pkgSource {
	t.Helper()
	p := &pkgSource{name: filepath.Base(dir), fset: fset, files: map[string]*ast.File{}, consts: map[string]ast.Expr{}}
	paths, err := filepath.Glob(filepath.Join(root, dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range paths {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, path)
		p.files[filepath.ToSlash(rel)] = f
		for _, decl := range f.Decls {
			if g, ok := decl.(*ast.GenDecl); ok && g.Tok == token.CONST {
				for _, spec := range g.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if i < len(vs.Values) {
							p.consts[n.Name] = vs.Values[i]
						}
					}
				}
			}
		}
	}
	if len(p.files) == 0 {
		t.Fatalf("no Go files in %s", dir)
	}
	return p
}

// resolver evaluates expressions to constant strings within one function.
type resolver struct {
	pkg, api *pkgSource
	fn       *ast.FuncDecl
	depth    int
}

var statuses = map[string]string{
	"ConditionTrue": string(metav1.ConditionTrue), "ConditionFalse": string(metav1.ConditionFalse), "ConditionUnknown": string(metav1.ConditionUnknown),
}

func (r *resolver) eval(e ast.Expr) values {
	if r.depth > 20 {
		return values{unknown: true}
	}
	r.depth++
	defer func() { r.depth-- }()
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind == token.STRING {
			s, _ := strconv.Unquote(e.Value)
			return values{set: []string{s}, literal: true}
		}
	case *ast.ParenExpr:
		return r.eval(e.X)
	case *ast.CallExpr: // string(metav1.ConditionUnknown)
		if id, ok := e.Fun.(*ast.Ident); ok && id.Name == "string" && len(e.Args) == 1 {
			return r.eval(e.Args[0])
		}
	case *ast.SelectorExpr:
		if x, ok := e.X.(*ast.Ident); ok {
			switch x.Name {
			case "vmv1alpha1":
				if c, ok := r.api.consts[e.Sel.Name]; ok {
					return (&resolver{pkg: r.api, api: r.api, depth: r.depth}).eval(c)
				}
			case "metav1":
				if s, ok := statuses[e.Sel.Name]; ok {
					return values{set: []string{s}}
				}
			}
		}
	case *ast.Ident:
		if c, ok := r.pkg.consts[e.Name]; ok {
			v := r.eval(c)
			v.literal = false // a named constant; TestNoReasonSpeltAsString checks its definition
			return v
		}
		return r.local(e.Name)
	}
	return values{unknown: true}
}

// local evaluates a variable of the enclosing function: a parameter, or the union of what is
// assigned to it (including the elements a range loop takes it from).
func (r *resolver) local(name string) values {
	if r.fn == nil {
		return values{unknown: true}
	}
	for _, f := range r.fn.Type.Params.List {
		for _, n := range f.Names {
			if n.Name == name {
				return values{param: true}
			}
		}
	}
	var out values
	found := false
	ast.Inspect(r.fn.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			for i, l := range n.Lhs {
				if id, ok := l.(*ast.Ident); ok && id.Name == name {
					found = true
					if len(n.Rhs) == len(n.Lhs) {
						out = merge(out, r.eval(n.Rhs[i]))
					} else {
						out.unknown = true
					}
				}
			}
		case *ast.RangeStmt:
			if id, ok := n.Value.(*ast.Ident); ok && id.Name == name {
				found = true
				if lit, ok := n.X.(*ast.CompositeLit); ok {
					for _, el := range lit.Elts {
						out = merge(out, r.eval(el))
					}
				} else {
					out.unknown = true
				}
			}
		case *ast.ValueSpec:
			for i, id := range n.Names {
				if id.Name == name {
					found = true
					if i < len(n.Values) {
						out = merge(out, r.eval(n.Values[i]))
					}
				}
			}
		}
		return true
	})
	if !found {
		out.unknown = true
	}
	return out
}

func isSel(e ast.Expr, pkg, name string) bool {
	s, ok := e.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	x, ok := s.X.(*ast.Ident)
	return ok && x.Name == pkg && s.Sel.Name == name
}

func calleeName(c *ast.CallExpr) string {
	switch f := c.Fun.(type) {
	case *ast.Ident:
		return f.Name
	case *ast.SelectorExpr:
		return f.Sel.Name
	}
	return ""
}

func keyName(e ast.Expr) string {
	switch k := e.(type) {
	case *ast.Ident:
		return k.Name
	case *ast.BasicLit:
		s, _ := strconv.Unquote(k.Value)
		return s
	}
	return ""
}

// collect finds every condition write in a package. Problems it cannot resolve are errors:
// a write the check cannot read is a write nobody checks.
func collect(pkg, api *pkgSource) (writes []write, problems []string) {
	for path, f := range pkg.files {
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			r := &resolver{pkg: pkg, api: api, fn: fn}
			_, isWrapper := wrappers[fn.Name.Name]
			add := func(pos token.Pos, w write) {
				w.pos = pkg.fset.Position(pos)
				w.kind = fileKinds[path]
				if w.kind == "" {
					problems = append(problems, fmt.Sprintf("%s: writes a condition, but %s is not in fileKinds: add it with the kind it writes", w.pos, path))
					return
				}
				if w.types.param && isWrapper {
					return // the wrapper's callers are checked
				}
				if !w.types.resolved() {
					problems = append(problems, fmt.Sprintf("%s: cannot tell which condition type is written here (use a vmv1alpha1.Condition* constant, or add the function to wrappers)", w.pos))
					return
				}
				writes = append(writes, w)
			}
			// Condition variables (v := metav1.Condition{...}, then v.Type, v.Status, v.Reason
			// set apart) are paired by where they are set: a reason set in one branch of an if
			// is not written with a type set in the other.
			vars := map[string]*condVar{}
			var order []string
			var stack []ast.Node
			visit := func(n ast.Node) bool {
				here := blocks(stack)
				switch n := n.(type) {
				case *ast.CallExpr:
					name := calleeName(n)
					if w, ok := wrappers[name]; ok && name != fn.Name.Name {
						typ, st, reason := w(n.Args)
						if typ == nil {
							problems = append(problems, fmt.Sprintf("%s: %s called with an unexpected number of arguments", pkg.fset.Position(n.Pos()), name))
							return true
						}
						add(n.Pos(), write{types: r.eval(typ), pairs: []pair{{r.eval(st), r.eval(reason)}}})
					}
					if isSel(n.Fun, "meta", "RemoveStatusCondition") && len(n.Args) == 2 {
						add(n.Pos(), write{types: r.eval(n.Args[1])})
					}
				case *ast.AssignStmt:
					if len(n.Lhs) == 1 && len(n.Rhs) == 1 {
						if id, ok := n.Lhs[0].(*ast.Ident); ok {
							if lit, ok := n.Rhs[0].(*ast.CompositeLit); ok && isSel(lit.Type, "metav1", "Condition") {
								if _, seen := vars[id.Name]; !seen {
									order = append(order, id.Name)
								}
								// A new literal starts the variable afresh.
								w := conditionLiteral(r, lit)
								vars[id.Name] = &condVar{pos: lit.Pos(), types: []typeSet{{w.types, here}}}
								for _, pr := range w.pairs {
									vars[id.Name].pairs = append(vars[id.Name].pairs, pairSet{pr, here})
								}
								return false
							}
						}
					}
					var st, reason values
					var target *condVar
					for i, l := range n.Lhs {
						s, ok := l.(*ast.SelectorExpr)
						if !ok || len(n.Rhs) != len(n.Lhs) {
							continue
						}
						x, ok := s.X.(*ast.Ident)
						if !ok || vars[x.Name] == nil {
							continue
						}
						target = vars[x.Name]
						switch s.Sel.Name {
						case "Type":
							target.types = append(target.types, typeSet{r.eval(n.Rhs[i]), here})
						case "Status":
							st = r.eval(n.Rhs[i])
						case "Reason":
							reason = r.eval(n.Rhs[i])
						}
					}
					if target != nil && (len(reason.set) > 0 || reason.unknown || reason.param) {
						if len(st.set) == 0 {
							st.unknown = true
						}
						target.pairs = append(target.pairs, pairSet{pair{st, reason}, here})
					}
				case *ast.CompositeLit:
					if isSel(n.Type, "metav1", "Condition") {
						add(n.Pos(), conditionLiteral(r, n))
						return false
					}
					if m := mapCondition(r, n); m != nil {
						add(n.Pos(), *m)
					}
				}
				return true
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				if n == nil {
					stack = stack[:len(stack)-1]
					return true
				}
				stack = append(stack, n)
				if !visit(n) {
					stack = stack[:len(stack)-1] // no nil visit follows a pruned node
					return false
				}
				return true
			})
			for _, name := range order {
				v := vars[name]
				var all values
				for _, ts := range v.types {
					all = merge(all, ts.types)
				}
				if len(v.pairs) == 0 {
					add(v.pos, write{types: all})
				}
				for _, ps := range v.pairs {
					var types values
					for _, ts := range v.types {
						if related(ts.blocks, ps.blocks) {
							types = merge(types, ts.types)
						}
					}
					add(v.pos, write{types: types, pairs: []pair{ps.pair}})
				}
			}
		}
	}
	return writes, problems
}

type condVar struct {
	pos   token.Pos
	types []typeSet
	pairs []pairSet
}

type typeSet struct {
	types  values
	blocks []*ast.BlockStmt
}

type pairSet struct {
	pair
	blocks []*ast.BlockStmt
}

// blocks are the blocks enclosing the innermost node of stack.
func blocks(stack []ast.Node) []*ast.BlockStmt {
	var out []*ast.BlockStmt
	for _, n := range stack {
		if b, ok := n.(*ast.BlockStmt); ok {
			out = append(out, b)
		}
	}
	return out
}

// related says whether two places can both run in one pass: one's blocks enclose the other's.
func related(a, b []*ast.BlockStmt) bool {
	if len(a) > len(b) {
		a, b = b, a
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// conditionLiteral reads a metav1.Condition{...} literal.
func conditionLiteral(r *resolver, lit *ast.CompositeLit) write {
	var w write
	var st, reason values
	st.unknown = true
	for _, el := range lit.Elts {
		kv, ok := el.(*ast.KeyValueExpr)
		if !ok {
			continue
		}
		switch keyName(kv.Key) {
		case "Type":
			w.types = r.eval(kv.Value)
		case "Status":
			st = r.eval(kv.Value)
		case "Reason":
			reason = r.eval(kv.Value)
		}
	}
	if len(reason.set) > 0 || reason.unknown || reason.param {
		w.pairs = append(w.pairs, pair{st, reason})
	}
	return w
}

// mapCondition reads a condition written as unstructured content: {"type": ..., "reason": ...}.
func mapCondition(r *resolver, lit *ast.CompositeLit) *write {
	var typ, st, reason ast.Expr
	for _, el := range lit.Elts {
		kv, ok := el.(*ast.KeyValueExpr)
		if !ok {
			continue
		}
		if b, ok := kv.Key.(*ast.BasicLit); ok && b.Kind == token.STRING {
			switch keyName(b) {
			case "type":
				typ = kv.Value
			case "status":
				st = kv.Value
			case "reason":
				reason = kv.Value
			}
		}
	}
	if typ == nil || reason == nil {
		return nil
	}
	s := values{unknown: true}
	if st != nil {
		s = r.eval(st)
	}
	return &write{types: r.eval(typ), pairs: []pair{{s, r.eval(reason)}}}
}

func sources(t *testing.T) (*pkgSource, map[string]*pkgSource) {
	t.Helper()
	fset := token.NewFileSet()
	api := parseDir(t, fset, "api/v1alpha1")
	pkgs := map[string]*pkgSource{}
	for dir := range writers {
		pkgs[dir] = parseDir(t, fset, dir)
	}
	return api, pkgs
}

func reasonOf(kind, typ, reason string) (vmv1alpha1.ConditionReason, bool) {
	for _, r := range vmv1alpha1.ReasonsOf(kind, typ) {
		if r.Name == reason {
			return r, true
		}
	}
	return vmv1alpha1.ConditionReason{}, false
}

func contains(list []metav1.ConditionStatus, s string) bool {
	for _, l := range list {
		if string(l) == s {
			return true
		}
	}
	return false
}

// check holds every write of pkgs (by directory) to the table.
func check(api *pkgSource, pkgs map[string]*pkgSource) (problems []string, total, unresolved int) {
	for dir, pkg := range pkgs {
		writes, p := collect(pkg, api)
		problems = append(problems, p...)
		me := writers[dir]
		for _, w := range writes {
			total++
			for _, typ := range w.types.set {
				def, ok := vmv1alpha1.LookupCondition(w.kind, typ)
				if !ok {
					problems = append(problems, fmt.Sprintf("%s: writes %s/%s, which the table does not have", w.pos, w.kind, typ))
					continue
				}
				named := false
				for _, pr := range w.pairs {
					if !pr.reason.resolved() {
						unresolved++
						continue
					}
					for _, reason := range pr.reason.set {
						named = true
						if who := def.WriterOf(reason); who != me {
							problems = append(problems, fmt.Sprintf("%s: %s writes %s/%s with reason %s, which the table gives to %s", w.pos, dir, w.kind, typ, reason, who))
						}
						r, ok := reasonOf(w.kind, typ, reason)
						if !ok {
							problems = append(problems, fmt.Sprintf("%s: reason %s is not in the table for %s/%s", w.pos, reason, w.kind, typ))
							continue
						}
						if pr.status.resolved() {
							for _, s := range pr.status.set {
								if !contains(r.Statuses, s) {
									problems = append(problems, fmt.Sprintf("%s: %s/%s=%s with reason %s; the table allows %v", w.pos, w.kind, typ, s, reason, r.Statuses))
								}
							}
						}
					}
				}
				if !named && def.Writer != me {
					problems = append(problems, fmt.Sprintf("%s: %s writes %s/%s, which the table gives to %s", w.pos, dir, w.kind, typ, def.Writer))
				}
			}
		}
	}
	sort.Strings(problems)
	return problems, total, unresolved
}

// TestWritersOwnTheirConditions: each package writes only the condition types the table gives
// its writer (docs/architecture.md "Who writes what"), with reasons and statuses the table
// lists for that type.
func TestWritersOwnTheirConditions(t *testing.T) {
	api, pkgs := sources(t)
	problems, total, unresolved := check(api, pkgs)
	for _, p := range problems {
		t.Error(p)
	}
	// A walker that finds nothing would pass; the code has about 60 write sites.
	if total < 40 {
		t.Fatalf("only %d condition writes found: is the walk broken?", total)
	}
	t.Logf("%d condition writes checked; %d reasons are computed at run time (a step's reason in Ready, a template's presence) and checked by the tests that run them", total, unresolved)
}

// TestNoReasonSpeltAsString: reasons come from the table's constants, so a new one cannot
// bypass the table by being typed inline.
func TestNoReasonSpeltAsString(t *testing.T) {
	api, pkgs := sources(t)
	for dir, pkg := range pkgs {
		for name, val := range pkg.consts {
			if !strings.HasPrefix(name, "Reason") {
				continue
			}
			if s, ok := val.(*ast.SelectorExpr); !ok || !isSel(s, "vmv1alpha1", s.Sel.Name) || api.consts[s.Sel.Name] == nil {
				t.Errorf("%s.%s must be an alias of a vmv1alpha1.Reason* constant (api/v1alpha1/conditions.go)", dir, name)
			}
		}
		for _, f := range pkg.files {
			ast.Inspect(f, func(n ast.Node) bool {
				var reasons []ast.Expr
				switch n := n.(type) {
				case *ast.KeyValueExpr:
					if k := keyName(n.Key); k == "Reason" || k == "reason" {
						reasons = append(reasons, n.Value)
					}
				case *ast.AssignStmt:
					for i, l := range n.Lhs {
						if s, ok := l.(*ast.SelectorExpr); ok && s.Sel.Name == "Reason" && len(n.Rhs) == len(n.Lhs) {
							reasons = append(reasons, n.Rhs[i])
						}
					}
				case *ast.CallExpr:
					if w, ok := wrappers[calleeName(n)]; ok {
						if _, _, reason := w(n.Args); reason != nil {
							reasons = append(reasons, reason)
						}
					}
				}
				for _, e := range reasons {
					if b, ok := e.(*ast.BasicLit); ok && b.Kind == token.STRING {
						t.Errorf("%s: reason %s spelt as a string: use the vmv1alpha1.Reason* constant (add it to the table if new)", pkg.fset.Position(b.Pos()), b.Value)
					}
				}
				return true
			})
		}
	}
}

// TestCheckSeesAForeignWrite proves the check bites: the agent setting the controller's
// Ready, or removing its Scheduled; a reason the table does not list; a listed reason with the
// wrong status; and the controller writing the agent's DomainRunning through a variable.
func TestCheckSeesAForeignWrite(t *testing.T) {
	api, pkgs := sources(t)
	parse := func(src string) *ast.File {
		f, err := parser.ParseFile(pkgs["hostagent"].fset, "bad.go", src, 0)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	agent, ctrl := *pkgs["hostagent"], *pkgs["controllers"]
	agent.files = map[string]*ast.File{"hostagent/clone_controller.go": parse(`package hostagent
func (r *CloneReconciler) bad(s *cloneScope) {
	s.setCondition(vmv1alpha1.ConditionReady, metav1.ConditionTrue, ReasonStarted, "")
	s.setCondition(vmv1alpha1.ConditionVolumeReady, metav1.ConditionFalse, "Oops", "")
	s.setCondition(vmv1alpha1.ConditionVolumeReady, metav1.ConditionTrue, ReasonOriginMissing, "")
	meta.RemoveStatusCondition(&s.status.Conditions, vmv1alpha1.ConditionScheduled)
}`)}
	ctrl.files = map[string]*ast.File{"controllers/lifecycle.go": parse(`package controllers
func bad(st *vmv1alpha1.VMCloneStatus) {
	cond := metav1.Condition{Type: vmv1alpha1.ConditionReady}
	if x {
		cond.Type = vmv1alpha1.ConditionDomainRunning
	}
	cond.Status, cond.Reason = metav1.ConditionTrue, ReasonRunning
	meta.SetStatusCondition(&st.Conditions, cond)
}`)}
	problems, _, _ := check(api, map[string]*pkgSource{"hostagent": &agent, "controllers": &ctrl})
	got := strings.Join(problems, "\n")
	for _, want := range []string{
		"hostagent writes VMClone/Ready with reason Started, which the table gives to controller",
		"reason Oops is not in the table for VMClone/VolumeReady",
		"VMClone/VolumeReady=True with reason OriginMissing",
		"hostagent writes VMClone/Scheduled, which the table gives to controller",
		"controllers writes VMClone/DomainRunning with reason Running, which the table gives to hostagent",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("not reported: %s\ngot:\n%s", want, got)
		}
	}
}
