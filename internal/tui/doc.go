// Package tui holds pktvisor-cli's terminal "DNS top": the REST client of the agent
// (Client: window/bucket fetches, the reference's 425 adaptation of the window size,
// operator-worded errors), the lenient JSON → Snapshot conversion (Decode), and the Bubble
// Tea model whose View renders the header and top-N tables of the reference's layout
// (spec §5) at any terminal size.
//
// Design choices:
//   - Bubble Tea v1 (github.com/charmbracelet/bubbletea) and Lip Gloss v1: the Elm-style
//     model/update/view makes every state (keys, errors, recovery, sizes) a plain function
//     call in tests, and HTTP runs in commands so a dead agent never blocks the keys.
//   - Decoding is lenient and bounded: a body over MaxBodyBytes is refused; a field of the
//     wrong type reads as zero, a list is capped at 1000 items and names at 512 bytes; only
//     an answer that is not a JSON object of the policy fails. The last good snapshot stays
//     on screen on any error.
//   - Names are attacker-chosen bytes off the wire: control characters, bidi overrides and
//     other zero-width or ambiguous-width runes are shown escaped (\x1b, \u202e), never sent
//     to the terminal, and widths are measured in cells so nothing wraps.
//   - Colors are ANSI palette entries (readable on dark and light themes), none with
//     NO_COLOR (lipgloss's renderer honours it); focus is also shown by a heavy border.
package tui
