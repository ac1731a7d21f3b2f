// tlog-verify: an independent check of a StemeDB node's verifiable log, with Go's own
// implementations of RFC 6962 Merkle proofs and C2SP signed notes (golang.org/x/mod/sumdb/tlog
// and golang.org/x/mod/sumdb/note, the Go checksum database's). Given the node's verifier key
// (the trust anchor, never fetched from the node), it:
//
//   - opens the node's signed checkpoint with the note package, and an earlier one if given;
//   - reads the tree's hash tiles (C2SP tlog-tiles paths) with tlog.TileHashReader, which
//     checks every tile against the signed root, and recomputes the root from them;
//   - for each record given (leaf index and bytes): hashes it itself, checks the node's
//     inclusion proof with tlog.CheckRecord, and that it equals the proof built from the tiles;
//   - checks the node's consistency proof from the earlier checkpoint with tlog.CheckTree, and
//     that it equals the proof built from the tiles;
//   - checks that a proof with one flipped bit is refused.
//
// Go 1.19 and x/mod 0.7 from Debian (golang-go, golang-golang-x-mod-dev), GOPATH mode:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go run scripts/tlog-verify/main.go \
//	  -url http://127.0.0.1:8080 -token T -key KEY -records FILE [-old OLD_NOTE_FILE]
//
// FILE holds one record per line: "<leaf index> <record bytes, hex>". Prints "ok" and a
// summary, or the first failure, and exits 1.
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

var (
	base  = flag.String("url", "", "the node's base URL")
	token = flag.String("token", "", "an API key with the read role")
	vkey  = flag.String("key", "", "the node's checkpoint verifier key")
	recs  = flag.String("records", "", "file of records: <leaf index> <hex bytes> per line")
	old   = flag.String("old", "", "an earlier signed checkpoint note (file), for a consistency check")
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "tlog-verify: "+format+"\n", args...)
	os.Exit(1)
}

func get(path string) []byte {
	req, err := http.NewRequest("GET", *base+path, nil)
	if err != nil {
		fail("%v", err)
	}
	req.Header.Set("Authorization", "Bearer "+*token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fail("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		fail("GET %s: %v", path, err)
	}
	if resp.StatusCode != 200 {
		fail("GET %s: %s: %s", path, resp.Status, body)
	}
	return body
}

type checkpoint struct {
	origin string
	tree   tlog.Tree
}

// open verifies a signed note with the note package and parses its c2sp.org/tlog-checkpoint body.
func open(msg []byte, verifiers note.Verifiers) checkpoint {
	n, err := note.Open(msg, verifiers)
	if err != nil {
		fail("the checkpoint note does not verify: %v", err)
	}
	lines := strings.SplitN(n.Text, "\n", 4)
	if len(lines) < 4 {
		fail("the checkpoint has fewer than three lines: %q", n.Text)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("the checkpoint size %q: %v", lines[1], err)
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		fail("the checkpoint root %q is not a base64 hash", lines[2])
	}
	var h tlog.Hash
	copy(h[:], root)
	return checkpoint{origin: lines[0], tree: tlog.Tree{N: size, Hash: h}}
}

// tiles reads hash tiles from the node at their c2sp.org/tlog-tiles paths.
type tiles struct{ fetched int }

func (t *tiles) Height() int { return 8 }

func (t *tiles) ReadTiles(list []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(list))
	for i, tile := range list {
		// Go names a tile tile/8/L/N[.p/W]; tlog-tiles drops the height: tile/L/N[.p/W].
		path := strings.TrimPrefix(tile.Path(), "tile/8/")
		out[i] = get("/v1/log/tile/" + path)
		t.fetched++
	}
	return out, nil
}

func (t *tiles) SaveTiles([]tlog.Tile, [][]byte) {}

func hashes(hexes []string) []tlog.Hash {
	out := make([]tlog.Hash, len(hexes))
	for i, text := range hexes {
		b, err := hex.DecodeString(text)
		if err != nil || len(b) != tlog.HashSize {
			fail("%q is not a hex hash", text)
		}
		copy(out[i][:], b)
	}
	return out
}

func same(a, b []tlog.Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func main() {
	flag.Parse()
	verifier, err := note.NewVerifier(*vkey)
	if err != nil {
		fail("the verifier key: %v", err)
	}
	verifiers := note.VerifierList(verifier)
	now := open(get("/v1/checkpoint"), verifiers)
	reader := &tiles{}
	thr := tlog.TileHashReader(now.tree, reader)
	root, err := tlog.TreeHash(now.tree.N, thr)
	if err != nil {
		fail("the tree hash from the tiles: %v", err)
	}
	if root != now.tree.Hash {
		fail("the tiles give root %v, the checkpoint %v", root, now.tree.Hash)
	}

	file, err := os.Open(*recs)
	if err != nil {
		fail("%v", err)
	}
	scanner := bufio.NewScanner(file)
	scanner.Buffer(make([]byte, 1<<20), 1<<24)
	checked := 0
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) != 2 {
			fail("a record line is not <index> <hex>: %q", scanner.Text())
		}
		index, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			fail("%v", err)
		}
		data, err := hex.DecodeString(fields[1])
		if err != nil {
			fail("%v", err)
		}
		leaf := tlog.RecordHash(data)
		var served struct {
			Index    int64    `json:"index"`
			Size     int64    `json:"size"`
			LeafHash string   `json:"leaf_hash"`
			Path     []string `json:"path"`
		}
		body := get(fmt.Sprintf("/v1/proofs/inclusion?index=%d&size=%d", index, now.tree.N))
		if err := json.Unmarshal(body, &served); err != nil {
			fail("the inclusion proof of %d: %v", index, err)
		}
		proof := tlog.RecordProof(hashes(served.Path))
		if err := tlog.CheckRecord(proof, now.tree.N, now.tree.Hash, index, leaf); err != nil {
			fail("the inclusion proof of record %d does not verify: %v", index, err)
		}
		fromTiles, err := tlog.ProveRecord(now.tree.N, index, thr)
		if err != nil {
			fail("proving record %d from the tiles: %v", index, err)
		}
		if !same(fromTiles, proof) {
			fail("the node's proof of record %d differs from the tiles'", index)
		}
		if len(proof) > 0 {
			proof[0][0] ^= 1
			if tlog.CheckRecord(proof, now.tree.N, now.tree.Hash, index, leaf) == nil {
				fail("a flipped bit in the proof of record %d passed", index)
			}
		}
		checked++
	}
	if err := scanner.Err(); err != nil {
		fail("%v", err)
	}

	consistent := "no earlier checkpoint given"
	if *old != "" {
		msg, err := os.ReadFile(*old)
		if err != nil {
			fail("%v", err)
		}
		before := open(msg, verifiers)
		var served struct {
			Path []string `json:"path"`
		}
		body := get(fmt.Sprintf("/v1/proofs/consistency?old=%d&new=%d", before.tree.N, now.tree.N))
		if err := json.Unmarshal(body, &served); err != nil {
			fail("the consistency proof: %v", err)
		}
		proof := tlog.TreeProof(hashes(served.Path))
		if err := tlog.CheckTree(proof, now.tree.N, now.tree.Hash, before.tree.N, before.tree.Hash); err != nil {
			fail("the consistency proof from %d to %d does not verify: %v", before.tree.N, now.tree.N, err)
		}
		fromTiles, err := tlog.ProveTree(now.tree.N, before.tree.N, thr)
		if err != nil {
			fail("proving consistency from the tiles: %v", err)
		}
		if !same(fromTiles, proof) {
			fail("the node's consistency proof differs from the tiles'")
		}
		if len(proof) > 0 {
			proof[len(proof)-1][0] ^= 1
			if tlog.CheckTree(proof, now.tree.N, now.tree.Hash, before.tree.N, before.tree.Hash) == nil {
				fail("a flipped bit in the consistency proof passed")
			}
		}
		consistent = fmt.Sprintf("consistent with the checkpoint at size %d", before.tree.N)
	}
	fmt.Printf("ok: %s, size %d; %d tiles read; %d inclusion proofs verified; %s\n",
		now.origin, now.tree.N, reader.fetched, checked, consistent)
}
