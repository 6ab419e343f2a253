"""Running the network on songs: `separator` (chunked inference of an array or a stream of blocks),
`pipeline` (one file in, stems, phrases and a report out: shared by the CLI and the app) and `cli`."""
