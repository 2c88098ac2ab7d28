package p2p

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/pnet"
)

var (
	// ErrIdentity is matched (errors.Is) by every error of LoadOrCreateIdentity.
	ErrIdentity = errors.New("p2p: identity key")
	// ErrSwarmKey is matched (errors.Is) by every error of LoadSwarmKey.
	ErrSwarmKey = errors.New("p2p: swarm key")
)

// maxKeyFile bounds how much of a key file is read.
const maxKeyFile = 64 << 10

// LoadOrCreateIdentity returns the host key kept in dir/identity.key. On first use it
// creates dir (mode 0700) and a new Ed25519 key, written atomically with mode 0600, so
// the peer ID stays the same across restarts. An existing file that cannot be read or
// parsed is an error (it is never silently replaced, which would change the peer ID).
func LoadOrCreateIdentity(dir string) (crypto.PrivKey, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: no data directory given", ErrIdentity)
	}
	path := filepath.Join(dir, IdentityFile)
	key, err := readIdentity(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: create data directory: %w", ErrIdentity, err)
	}
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("%w: generate: %w", ErrIdentity, err)
	}
	raw, err := crypto.MarshalPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: encode: %w", ErrIdentity, err)
	}
	tmp, err := os.CreateTemp(dir, ".identity-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIdentity, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("%w: %w", ErrIdentity, err)
	}
	if _, err := tmp.Write(raw); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("%w: write %s: %w", ErrIdentity, tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("%w: sync %s: %w", ErrIdentity, tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIdentity, err)
	}
	// Link fails if another process created the key meanwhile: then that key wins.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readIdentity(path)
		}
		return nil, fmt.Errorf("%w: install %s: %w", ErrIdentity, path, err)
	}
	return priv, nil
}

func readIdentity(path string) (crypto.PrivKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrIdentity, path, err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxKeyFile))
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %w", ErrIdentity, path, err)
	}
	key, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not a libp2p private key (remove it to create a new identity, which changes the peer ID): %w", ErrIdentity, path, err)
	}
	return key, nil
}

// swarmKeyHeader is the first line of a libp2p PSK v1 file.
const swarmKeyHeader = "/key/swarm/psk/1.0.0/"

// LoadSwarmKey reads a libp2p private network key file: the line "/key/swarm/psk/1.0.0/",
// an encoding line ("/base16/", "/base64/" or "/bin/") and the 32-byte key in that
// encoding (the format of ipfs-swarm-key-gen and GenerateSwarmKey). Errors name the file
// and say what is wrong; they match ErrSwarmKey.
func LoadSwarmKey(path string) (pnet.PSK, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSwarmKey, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %w", ErrSwarmKey, path, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes: not a swarm key file", ErrSwarmKey, path, maxKeyFile)
	}
	psk, err := parseSwarmKey(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrSwarmKey, path, err)
	}
	return psk, nil
}

func parseSwarmKey(data []byte) (pnet.PSK, error) {
	header, rest, ok := bytes.Cut(data, []byte("\n"))
	if !ok || strings.TrimRight(string(header), "\r") != swarmKeyHeader {
		return nil, fmt.Errorf("first line must be %q", swarmKeyHeader)
	}
	enc, rest, ok := bytes.Cut(rest, []byte("\n"))
	if !ok {
		return nil, errors.New("missing encoding line and key")
	}
	var key []byte
	switch e := strings.TrimRight(string(enc), "\r"); e {
	case "/base16/":
		k, err := hex.DecodeString(strings.TrimSpace(string(rest)))
		if err != nil {
			return nil, fmt.Errorf("key is not valid base16: %w", err)
		}
		key = k
	case "/base64/":
		k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(rest)))
		if err != nil {
			return nil, fmt.Errorf("key is not valid base64: %w", err)
		}
		key = k
	case "/bin/":
		key = rest
		if len(key) == 33 && key[32] == '\n' {
			key = key[:32]
		}
	default:
		return nil, fmt.Errorf("unknown key encoding %q (want /base16/, /base64/ or /bin/)", e)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("key is %d bytes, want 32", len(key))
	}
	// Cross-check with libp2p's own decoder so we accept nothing it would refuse.
	psk, err := pnet.DecodeV1PSK(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("libp2p refuses it: %w", err)
	}
	if !bytes.Equal(psk, key) {
		return nil, errors.New("libp2p reads a different key from it")
	}
	return psk, nil
}

// GenerateSwarmKey writes a new random private network key to w in the base16 format
// LoadSwarmKey reads. Every peer of a private swarm needs the same file.
func GenerateSwarmKey(w io.Writer) error {
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return fmt.Errorf("%w: generate: %w", ErrSwarmKey, err)
	}
	if _, err := fmt.Fprintf(w, "%s\n/base16/\n%s\n", swarmKeyHeader, hex.EncodeToString(key[:])); err != nil {
		return fmt.Errorf("%w: write: %w", ErrSwarmKey, err)
	}
	return nil
}
