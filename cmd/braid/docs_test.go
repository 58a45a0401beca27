package main

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// braidLine finds a braid command in a line of a code block: after the
// start of the line, a space, a slash (/usr/local/bin/braid), a quote or
// a parenthesis.
var braidLine = regexp.MustCompile(`(?:^|[\s/'"(])braid ([a-z][^'"|&;#` + "`" + `]*)`)

// inlineBraid is an inline code span holding a braid command.
var inlineBraid = regexp.MustCompile("`braid ([a-z][^`]*)`")

// docCommands returns every braid command line of a Markdown file: in
// fenced code blocks, and inline code spans that start with "braid ".
func docCommands(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	fenced := false
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		re := inlineBraid
		if fenced {
			re = braidLine
		}
		for _, m := range re.FindAllStringSubmatch(line, -1) {
			out = append(out, strings.TrimSpace(m[1]))
		}
	}
	return out
}

// Every braid command docs/operations.md shows exists, and every flag it
// passes is one that command's --help lists: an operator pasting a line
// from it never meets "flag provided but not defined". The check itself
// catches a misspelt flag, an unknown command and an unknown subcommand.
func TestOperationsDocCommands(t *testing.T) {
	cmds := docCommands(t, "../../docs/operations.md")
	if len(cmds) < 10 {
		t.Fatalf("found only %d braid commands in docs/operations.md: %q", len(cmds), cmds)
	}
	for _, line := range cmds {
		if err := checkCommandLine(line); err != nil {
			t.Errorf("docs/operations.md: %v", err)
		}
	}
	for _, bad := range []string{"replica --confg c.json --id 0", "restore --config c.json", "ledger import --config c.json", "ledger export --config c.json --id 0 --output x"} {
		if checkCommandLine(bad) == nil {
			t.Errorf("checkCommandLine accepted %q", bad)
		}
	}
}

// checkCommandLine checks one braid command line (without "braid "): the
// command, its subcommand if it has them, and its --flags.
func checkCommandLine(line string) error {
	withSub := map[string][]string{"ledger": {"show", "verify", "export"}, "kv": {"put", "get", "del", "delete", "scan"}, "bank": {"open", "deposit", "balance", "transfer"}}
	words := strings.Fields(line)
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == words[0] })
	if i < 0 {
		return fmt.Errorf("%q: no command braid %s", line, words[0])
	}
	var args []string
	rest := words[1:]
	if subs, ok := withSub[words[0]]; ok && len(rest) > 0 { // a bare "braid kv" only names the command
		if !slices.Contains(subs, rest[0]) {
			return fmt.Errorf("%q: braid %s has the subcommands %q", line, words[0], subs)
		}
		args, rest = append(args, rest[0]), rest[1:]
	}
	var flags []string
	for _, w := range rest {
		if name, ok := strings.CutPrefix(w, "--"); ok {
			name, _, _ = strings.Cut(name, "=")
			flags = append(flags, name)
		}
	}
	if len(flags) == 0 {
		return nil
	}
	stdout, stderr, err := runCmd(commands[i].run, append(args, "--help")...)
	if err != nil {
		return fmt.Errorf("%q: --help: %v", line, err)
	}
	help := stdout + stderr
	for _, f := range flags {
		if !strings.Contains(help, "\n  -"+f+" ") && !strings.Contains(help, "\n  -"+f+"\n") && !strings.Contains(help, "\n  -"+f+"\t") {
			return fmt.Errorf("%q: braid %s has no flag --%s", line, strings.Join(append([]string{words[0]}, args...), " "), f)
		}
	}
	return nil
}
