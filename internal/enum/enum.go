// Package enum names the values of small enumerations from one table per
// type, so that a type's names sit next to its constants and a value
// without a name (from a newer peer or a corrupt record) prints its number
// rather than a wrong name.
package enum

import "fmt"

// Name returns names[v], or "kind(v)" when v has no name in the table.
func Name[T ~uint8](names []string, v T, kind string) string {
	if int(v) < len(names) && names[v] != "" {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", kind, uint8(v))
}
