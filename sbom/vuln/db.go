package vuln

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/wagoodman/go-progress"

	v6 "github.com/anchore/grype/grype/db/v6"
	"github.com/anchore/grype/grype/db/v6/distribution"
	"github.com/anchore/grype/grype/db/v6/installation"
	"github.com/anchore/grype/grype/vulnerability"
)

// SchemaDir is the directory under a grype cache root that holds the
// database this build reads: grype v0.121 reads schema 6 (v6.ModelVersion,
// which a test holds this to).
const SchemaDir = "6"

// howToGetDB is the advice for a missing or unusable database.
const howToGetDB = "on a machine with network, run `GRYPE_DB_CACHE_DIR=/tmp/grype-db grype db update` " +
	"(grype v0.121.x, database schema v6; or `grype db import FILE` of an archive listed at https://grype.anchore.io/databases) " +
	"and copy /tmp/grype-db here; then pass its path (the directory holding " + SchemaDir + "/vulnerability.db)"

// Open opens the grype database at o.DBPath for ScanWith, after checking
// that it is there, matches its recorded checksum (import.json) and is not
// older than o.MaxDBAge. It never downloads: grype's updater is handed a
// client that refuses every network call.
func Open(o Options) (vulnerability.Provider, DB, error) {
	root, err := dbRoot(o.DBPath)
	if err != nil {
		return nil, DB{}, err
	}
	cfg := installation.Config{
		DBRootDir: root,
		// The age is checked here, to return ErrStaleDB and honour MaxDBAge.
		ValidateAge:      false,
		ValidateChecksum: true,
	}
	cur, err := installation.NewCurator(cfg, offline{})
	if err != nil {
		return nil, DB{}, fmt.Errorf("%w at %s: %w", ErrBadDB, root, err)
	}
	st := cur.Status()
	db := DB{Path: st.Path, SchemaVersion: st.SchemaVersion, Built: st.Built, From: st.From}
	if st.Error != nil {
		return nil, db, fmt.Errorf("%w at %s: %w; the files may be incomplete or changed since import: %s", ErrBadDB, st.Path, st.Error, howToGetDB)
	}
	if err := checkAge(db, o); err != nil {
		return nil, db, err
	}
	rdr, err := cur.Reader()
	if err != nil {
		return nil, db, fmt.Errorf("%w at %s: %w", ErrBadDB, st.Path, err)
	}
	return v6.NewVulnerabilityProvider(rdr), db, nil
}

// dbRoot finds the cache root from what the user named: the root itself,
// the schema directory, or the vulnerability.db file in it.
func dbRoot(p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("%w: no database path given; %s", ErrNoDB, howToGetDB)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("%w: %w; %s", ErrNoDB, err, howToGetDB)
	}
	if !fi.IsDir() {
		if filepath.Base(p) != v6.VulnerabilityDBFileName {
			return "", fmt.Errorf("%w: %s is a file, not a grype database directory; %s", ErrNoDB, p, howToGetDB)
		}
		p = filepath.Dir(p)
	}
	candidates := []string{p}
	if filepath.Base(p) == SchemaDir {
		candidates = append(candidates, filepath.Dir(p))
	}
	for _, root := range candidates {
		if exists(filepath.Join(root, SchemaDir, v6.VulnerabilityDBFileName)) {
			return root, nil
		}
	}
	if exists(filepath.Join(p, v6.VulnerabilityDBFileName)) {
		return "", fmt.Errorf("%w: %s holds a vulnerability.db outside a %s/ directory (another schema?); this build reads grype's schema v%s: %s", ErrNoDB, p, SchemaDir, SchemaDir, howToGetDB)
	}
	return "", fmt.Errorf("%w: %s has no %s; %s", ErrNoDB, p, filepath.Join(SchemaDir, v6.VulnerabilityDBFileName), howToGetDB)
}

func exists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

func checkAge(db DB, o Options) error {
	limit := o.MaxDBAge
	if limit == 0 {
		limit = DefaultMaxDBAge
	}
	if limit < 0 {
		return nil
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	age := now().Sub(db.Built)
	if age > limit {
		return fmt.Errorf("%w: %s was built %s (%s ago), more than the %s allowed; fetch a fresh one (%s) or allow the age explicitly",
			ErrStaleDB, db.Path, db.Built.UTC().Format(time.RFC3339), age.Round(time.Hour), limit, howToGetDB)
	}
	return nil
}

// errOffline is what the refusing client answers; grype only asks when
// updating, which Open never does.
var errOffline = errors.New("canarybot never downloads a vulnerability database")

// offline is grype's distribution client with the network taken out.
type offline struct{}

func (offline) Latest() (*distribution.LatestDocument, error) { return nil, errOffline }
func (offline) IsUpdateAvailable(*v6.Description) (*distribution.Archive, error) {
	return nil, errOffline
}
func (offline) ResolveArchiveURL(distribution.Archive) (string, error) { return "", errOffline }
func (offline) Download(string, string, *progress.Manual) (string, error) {
	return "", errOffline
}
