package p2p

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testPeer = "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"default", func(*Config) {}, ""},
		{"zero value", func(c *Config) { *c = Config{} }, ""},
		{"bad listen", func(c *Config) { c.Listen = []string{"not-an-addr"} }, "listen address"},
		{"udp without quic", func(c *Config) { c.Listen = []string{"/ip4/0.0.0.0/udp/1"} }, "only TCP and QUIC"},
		{"bootstrap without peer id", func(c *Config) { c.Bootstrap = []string{"/ip4/1.2.3.4/tcp/4001"} }, "must end in /p2p/"},
		{"bootstrap garbage", func(c *Config) { c.Bootstrap = []string{"/nope"} }, "bootstrap address"},
		{"bootstrap ok", func(c *Config) { c.Bootstrap = []string{"/ip4/1.2.3.4/tcp/4001/p2p/" + testPeer} }, ""},
		{"prefix without slash", func(c *Config) { c.ProtocolPrefix = "dray" }, "protocol prefix"},
		{"prefix with trailing slash", func(c *Config) { c.ProtocolPrefix = "/dray/" }, "protocol prefix"},
		{"low above high", func(c *Config) { c.ConnLow, c.ConnHigh = 10, 5 }, "watermarks"},
		{"negative low", func(c *Config) { c.ConnLow = -1 }, "watermarks"},
		{"negative message size", func(c *Config) { c.MaxMessageSize = -1 }, "message size"},
		{"huge message size", func(c *Config) { c.MaxMessageSize = 1 << 30 }, "message size"},
		{"negative memory", func(c *Config) { c.MaxMemory = -1 }, "resource budget"},
		{"negative announce backlog", func(c *Config) { c.AnnounceBacklog = -1 }, "announce backlog"},
		{"negative announce workers", func(c *Config) { c.AnnounceWorkers = -1 }, "announce backlog"},
		{"too many announce workers", func(c *Config) { c.AnnounceWorkers = 1000 }, "workers in 0..256"},
		{"small announce backlog", func(c *Config) { c.AnnounceBacklog, c.AnnounceWorkers = 1, 1 }, ""},
		{"psk with quic only", func(c *Config) {
			c.SwarmKeyFile = "x"
			c.Listen = []string{"/ip4/0.0.0.0/udp/1/quic-v1"}
		}, "needs a TCP listen address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mutate(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidConfig)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	assert.Equal(t, DefaultListen, c.Listen)
	assert.True(t, c.MDNS)
	assert.Equal(t, "/dray", c.ProtocolPrefix)
	assert.Equal(t, 64<<10, c.MaxMessageSize)
	c.Listen[0] = "changed"
	assert.Equal(t, "/ip4/0.0.0.0/tcp/4001", DefaultListen[0], "DefaultConfig must copy DefaultListen")
}

func TestWithPortZero(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/tcp/0"},
		{"/ip6/::/udp/4001/quic-v1", "/ip6/::/udp/0/quic-v1"},
		{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/tcp/0"},
	} {
		a, err := ma.NewMultiaddr(tc.in)
		require.NoError(t, err)
		got, changed := withPortZero(a)
		assert.Equal(t, tc.want, got.String())
		assert.Equal(t, tc.in != tc.want, changed)
	}
}

func TestIdentityPersists(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "data")
	k1, err := LoadOrCreateIdentity(dir)
	require.NoError(t, err)
	assert.EqualValues(t, crypto.Ed25519, k1.Type())
	st, err := os.Stat(filepath.Join(dir, IdentityFile))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	k2, err := LoadOrCreateIdentity(dir)
	require.NoError(t, err)
	assert.True(t, k1.Equals(k2))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary files left behind")
}

func TestIdentityErrors(t *testing.T) {
	_, err := LoadOrCreateIdentity("")
	assert.ErrorIs(t, err, ErrIdentity)

	dir := t.TempDir()
	path := filepath.Join(dir, IdentityFile)
	require.NoError(t, os.WriteFile(path, []byte("garbage"), 0o600))
	_, err = LoadOrCreateIdentity(dir)
	require.ErrorIs(t, err, ErrIdentity)
	assert.Contains(t, err.Error(), path)
	got, _ := os.ReadFile(path)
	assert.Equal(t, "garbage", string(got), "a corrupt key must not be replaced")
}

func TestLoadSwarmKey(t *testing.T) {
	var gen bytes.Buffer
	require.NoError(t, GenerateSwarmKey(&gen))
	key32 := bytes.Repeat([]byte{7}, 32)
	hdr := "/key/swarm/psk/1.0.0/\n"
	tests := []struct {
		name    string
		content string
		want    []byte
		wantErr string
	}{
		{"generated", gen.String(), nil, ""},
		{"base16", hdr + "/base16/\n" + "0707070707070707070707070707070707070707070707070707070707070707\n", key32, ""},
		{"base16 crlf", "/key/swarm/psk/1.0.0/\r\n/base16/\r\n0707070707070707070707070707070707070707070707070707070707070707\r\n", key32, ""},
		{"base64", hdr + "/base64/\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n", key32, ""},
		{"bin", hdr + "/bin/\n" + string(key32), key32, ""},
		{"empty", "", nil, "first line"},
		{"wrong header", "/key/swarm/psk/2.0.0/\n/base16/\n00\n", nil, "first line"},
		{"no encoding", hdr, nil, "missing encoding"},
		{"unknown encoding", hdr + "/base58/\nabc\n", nil, "unknown key encoding"},
		{"short key", hdr + "/base16/\n0707\n", nil, "key is 2 bytes, want 32"},
		{"long key", hdr + "/base16/\n" + "07070707070707070707070707070707070707070707070707070707070707070707\n", nil, "key is 34 bytes"},
		{"bad hex", hdr + "/base16/\nzz\n", nil, "not valid base16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "swarm.key")
			require.NoError(t, os.WriteFile(path, []byte(tt.content), 0o600))
			psk, err := LoadSwarmKey(path)
			if tt.wantErr != "" {
				require.ErrorIs(t, err, ErrSwarmKey)
				assert.Contains(t, err.Error(), path, "error must name the file")
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Len(t, psk, 32)
			if tt.want != nil {
				assert.Equal(t, tt.want, []byte(psk))
			}
		})
	}
	_, err := LoadSwarmKey(filepath.Join(t.TempDir(), "missing.key"))
	require.ErrorIs(t, err, ErrSwarmKey)
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.Contains(t, err.Error(), "missing.key")
}

func TestResourceLimits(t *testing.T) {
	small := ResourceLimits(1<<30, 1024).ToPartialLimitConfig()
	big := ResourceLimits(8<<30, 4096).ToPartialLimitConfig()
	assert.Equal(t, 8, int(small.PeerDefault.Conns))
	assert.Equal(t, 8, int(big.PeerDefault.ConnsInbound))
	assert.LessOrEqual(t, int64(small.PeerDefault.Memory), int64(1<<30)/4)
	assert.Greater(t, int64(big.System.Memory), int64(small.System.Memory), "limits scale with memory")
	assert.Greater(t, int(big.System.Conns), int(small.System.Conns))
	tiny := ResourceLimits(1, 1).ToPartialLimitConfig() // floors apply
	assert.Positive(t, int(tiny.System.Conns))
	def := ResourceLimits(0, 0).ToPartialLimitConfig()
	t.Logf("limits here: system conns=%v streams=%v mem=%v fd=%v; per peer conns=%v streams in/out=%v/%v mem=%v",
		def.System.Conns, def.System.Streams, def.System.Memory, def.System.FD,
		def.PeerDefault.Conns, def.PeerDefault.StreamsInbound, def.PeerDefault.StreamsOutbound, def.PeerDefault.Memory)
}
