package todos

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Defaults of StoreConfig.
const (
	DefaultMaxTodosPerOwner = 10_000
	// DefaultPageSize is the page size of List when ListOptions.Limit is 0.
	DefaultPageSize = 100
	// MaxPageSize is the largest page List returns.
	MaxPageSize = 500
)

// advisoryLockClass is the first key of the PostgreSQL advisory locks this
// package takes ("todo" in ASCII), so that they cannot collide with the
// locks of another application sharing the database.
const advisoryLockClass = 0x746f646f

// StoreConfig holds the Store's settings; a zero field means its default.
type StoreConfig struct {
	// MaxTodosPerOwner caps how many todos one owner can have, so one user
	// cannot fill the database. Default DefaultMaxTodosPerOwner.
	MaxTodosPerOwner int
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// Store keeps todos in a SQL database through GORM. It is safe for
// concurrent use.
//
// It supports the gorm.io/driver/sqlite and gorm.io/driver/postgres
// dialects. On SQLite it expects write transactions to begin IMMEDIATE (as
// gormdb.Open arranges), which serializes every writer of the
// database: that is what makes the cap check and the insert in Create
// atomic. On PostgreSQL, Create takes a transaction-scoped advisory lock per
// owner instead, so that two instances of the server cannot both see room
// for one more todo.
type Store struct {
	db       *gorm.DB
	max      int64
	now      func() time.Time
	postgres bool
}

// NewStore returns a Store over db. It fails for a database dialect other
// than sqlite or postgres.
func NewStore(db *gorm.DB, cfg StoreConfig) (*Store, error) {
	if db == nil {
		return nil, errors.New("todos: nil database")
	}
	s := &Store{db: db, max: int64(cfg.MaxTodosPerOwner), now: cfg.Now}
	switch name := db.Name(); name {
	case "sqlite":
	case "postgres":
		s.postgres = true
	default:
		return nil, fmt.Errorf("todos: unsupported database %q: want sqlite or postgres", name)
	}
	if cfg.MaxTodosPerOwner < 0 {
		return nil, errors.New("todos: MaxTodosPerOwner must not be negative")
	}
	if s.max == 0 {
		s.max = DefaultMaxTodosPerOwner
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// MaxTodosPerOwner reports the cap on todos per owner.
func (s *Store) MaxTodosPerOwner() int64 { return s.max }

// Migrate creates or updates the todos table and its indexes. Several
// instances may call it at once: they take turns, since concurrent CREATE
// TABLE statements would fail. On SQLite the transaction, which begins
// IMMEDIATE, is the turn; on PostgreSQL, where DDL is transactional too, an
// advisory lock is.
func (s *Store) Migrate(ctx context.Context) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if s.postgres {
			if err := tx.Exec("SELECT pg_advisory_xact_lock(?, 0)", advisoryLockClass).Error; err != nil {
				return err
			}
		}
		return tx.AutoMigrate(&Todo{})
	})
}

// ownerPrefix is the one row of the table todo_owner_prefix: its presence
// says that PrefixOwners has run on this database, and Prefix what it
// prefixed the owners written before with.
type ownerPrefix struct {
	ID     int    `gorm:"primaryKey;autoIncrement:false"`
	Prefix string `gorm:"type:text;not null"`
}

func (ownerPrefix) TableName() string { return "todo_owner_prefix" }

// PrefixOwners changes, once per database, the owner of every todo written
// until then to prefix followed by that owner, and records that it did: an
// application that starts naming owners differently (the todo API: the
// issuer, a space and the subject, where it was the subject alone) keeps
// each owner's todos, and no new name can fall on an old one. Later calls
// change nothing, whatever their prefix; each returns the prefix recorded
// by the first and the number of todos it changed (0 after the first).
// Call it after Migrate; several instances may call it at once.
func (s *Store) PrefixOwners(ctx context.Context, prefix string) (recorded string, changed int64, err error) {
	if prefix == "" {
		return "", 0, errors.New("todos: empty owner prefix")
	}
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if s.postgres {
			// The turn of Migrate's: no todo is written under an old name
			// between the check and the update by another instance.
			if err := tx.Exec("SELECT pg_advisory_xact_lock(?, 0)", advisoryLockClass).Error; err != nil {
				return err
			}
		}
		if err := tx.AutoMigrate(&ownerPrefix{}); err != nil {
			return err
		}
		var done []ownerPrefix
		if err := tx.Limit(1).Find(&done).Error; err != nil {
			return err
		}
		if len(done) > 0 {
			recorded = done[0].Prefix
			return nil
		}
		res := tx.Model(&Todo{}).Where("1 = 1").Update("owner", gorm.Expr("CAST(? AS TEXT) || owner", prefix))
		if res.Error != nil {
			return res.Error
		}
		recorded, changed = prefix, res.RowsAffected
		return tx.Create(&ownerPrefix{ID: 1, Prefix: prefix}).Error
	})
	if err != nil {
		return "", 0, fmt.Errorf("todos: prefixing owners: %w", err)
	}
	return recorded, changed, nil
}

// timestamp is now in UTC, truncated to what PostgreSQL stores.
func (s *Store) timestamp() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}

var errNoOwner = errors.New("todos: empty owner")

// Create adds a todo for owner. It returns a *ValidationError for invalid
// fields and ErrLimit when owner already has MaxTodosPerOwner todos.
func (s *Store) Create(ctx context.Context, owner string, n NewTodo) (Todo, error) {
	if owner == "" {
		return Todo{}, errNoOwner
	}
	if problems := n.Valid(); len(problems) > 0 {
		return Todo{}, &ValidationError{Fields: problems}
	}
	now := s.timestamp()
	t := Todo{
		ID: newID(), Owner: owner, Title: n.Title, Completed: n.Completed, Order: n.Order,
		CreatedAt: now, UpdatedAt: now, Version: 1,
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := s.lockOwner(tx, owner); err != nil {
			return err
		}
		var count int64
		if err := tx.Model(&Todo{}).Where("owner = ?", owner).Count(&count).Error; err != nil {
			return err
		}
		if count >= s.max {
			return fmt.Errorf("%w: the limit is %d", ErrLimit, s.max)
		}
		// Select every column, or GORM would leave zero values out in
		// favour of the columns' defaults.
		return tx.Select("*").Create(&t).Error
	})
	if err != nil {
		return Todo{}, wrap("create", err)
	}
	return t, nil
}

// lockOwner serializes the writers of one owner's todos within tx.
func (s *Store) lockOwner(tx *gorm.DB, owner string) error {
	if !s.postgres {
		// BEGIN IMMEDIATE has already taken the database's write lock.
		return nil
	}
	// hashtext collisions only make two owners take turns, never wrong.
	return tx.Exec("SELECT pg_advisory_xact_lock(?, hashtext(?))", advisoryLockClass, owner).Error
}

// Get returns owner's todo id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, owner, id string) (Todo, error) {
	if owner == "" {
		return Todo{}, errNoOwner
	}
	if !validID(id) {
		return Todo{}, ErrNotFound
	}
	var t Todo
	err := s.db.WithContext(ctx).Where("owner = ? AND id = ?", owner, id).Take(&t).Error
	if err != nil {
		return Todo{}, wrap("get", err)
	}
	return normalize(t), nil
}

// ListOptions selects a page of an owner's list.
type ListOptions struct {
	// Completed, when set, keeps only the todos whose Completed equals it.
	Completed *bool
	// Limit is the page size: 0 means DefaultPageSize; it is at most
	// MaxPageSize.
	Limit int
	// After continues the list after a todo that an earlier page ended
	// with; the zero Cursor starts at the beginning.
	After Cursor
}

// Page is one page of a list.
type Page struct {
	// Todos are ordered by Order, then creation time, then ID. It is never
	// nil.
	Todos []Todo
	// Next continues the list; it is the zero Cursor on the last page.
	Next Cursor
}

// List returns a page of owner's todos ordered by Order, then creation,
// then ID. The page is a range scan of the list index, as cheap with a
// million rows in the table as with a thousand.
func (s *Store) List(ctx context.Context, owner string, opts ListOptions) (Page, error) {
	if owner == "" {
		return Page{}, errNoOwner
	}
	limit := opts.Limit
	switch {
	case limit < 0:
		return Page{}, errors.New("todos: negative limit")
	case limit == 0:
		limit = DefaultPageSize
	case limit > MaxPageSize:
		limit = MaxPageSize
	}
	q := s.db.WithContext(ctx).Where("owner = ?", owner)
	if opts.Completed != nil {
		q = q.Where("completed = ?", *opts.Completed)
	}
	if c := opts.After; !c.IsZero() {
		q = q.Where("(position, created_at, id) > (?, ?, ?)", c.order, c.createdAt, c.id)
	}
	// One more than asked tells whether there is a next page.
	todos := make([]Todo, 0, min(limit+1, 64))
	if err := q.Order("position, created_at, id").Limit(limit + 1).Find(&todos).Error; err != nil {
		return Page{}, wrap("list", err)
	}
	var page Page
	if len(todos) > limit {
		todos = todos[:limit]
		page.Next = cursorAfter(todos[limit-1])
	}
	for i := range todos {
		todos[i] = normalize(todos[i])
	}
	page.Todos = todos
	return page, nil
}

// Count returns how many todos owner has.
func (s *Store) Count(ctx context.Context, owner string) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&Todo{}).Where("owner = ?", owner).Count(&n).Error
	return n, wrap("count", err)
}

// Update applies p to owner's todo id and returns the result. With ifMatch
// set, it changes nothing and returns ErrPreconditionFailed unless the
// todo's Version is still *ifMatch. A patch that changes nothing leaves
// Version as it is. Invalid fields are a *ValidationError.
func (s *Store) Update(ctx context.Context, owner, id string, p Patch, ifMatch *int) (Todo, error) {
	if owner == "" {
		return Todo{}, errNoOwner
	}
	if problems := p.Valid(); len(problems) > 0 {
		return Todo{}, &ValidationError{Fields: problems}
	}
	if !validID(id) {
		return Todo{}, ErrNotFound
	}
	var t Todo
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// FOR UPDATE (on PostgreSQL; the SQLite dialect leaves it out, its
		// transaction already excludes other writers) keeps the version
		// read here current until the update.
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).
			Where("owner = ? AND id = ?", owner, id).Take(&t).Error
		if err != nil {
			return err
		}
		if ifMatch != nil && *ifMatch != t.Version {
			return ErrPreconditionFailed
		}
		changes := map[string]any{}
		if p.Title != nil && *p.Title != t.Title {
			changes["title"], t.Title = *p.Title, *p.Title
		}
		if p.Completed != nil && *p.Completed != t.Completed {
			changes["completed"], t.Completed = *p.Completed, *p.Completed
		}
		if p.Order != nil && *p.Order != t.Order {
			changes["position"], t.Order = *p.Order, *p.Order
		}
		if len(changes) == 0 {
			return nil
		}
		old := t.Version
		t.Version++
		t.UpdatedAt = s.timestamp()
		changes["version"], changes["updated_at"] = t.Version, t.UpdatedAt
		res := tx.Model(&Todo{}).Where("owner = ? AND id = ? AND version = ?", owner, id, old).Updates(changes)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return ErrPreconditionFailed // cannot happen under the lock; never overwrite blindly
		}
		return nil
	})
	if err != nil {
		return Todo{}, wrap("update", err)
	}
	return normalize(t), nil
}

// Delete removes owner's todo id. With ifMatch set, it removes nothing and
// returns ErrPreconditionFailed unless the todo's Version is still *ifMatch.
func (s *Store) Delete(ctx context.Context, owner, id string, ifMatch *int) error {
	if owner == "" {
		return errNoOwner
	}
	if !validID(id) {
		return ErrNotFound
	}
	db := s.db.WithContext(ctx)
	q := db.Where("owner = ? AND id = ?", owner, id)
	if ifMatch != nil {
		q = q.Where("version = ?", *ifMatch)
	}
	res := q.Delete(&Todo{})
	if res.Error != nil {
		return wrap("delete", res.Error)
	}
	if res.RowsAffected == 1 {
		return nil
	}
	if ifMatch == nil {
		return ErrNotFound
	}
	// Nothing was deleted: tell a stale version from a missing todo.
	var n int64
	if err := db.Model(&Todo{}).Where("owner = ? AND id = ?", owner, id).Count(&n).Error; err != nil {
		return wrap("delete", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return ErrPreconditionFailed
}

// DeleteAll removes all of owner's todos, or only the completed ones, and
// reports how many it removed.
func (s *Store) DeleteAll(ctx context.Context, owner string, completedOnly bool) (int64, error) {
	if owner == "" {
		return 0, errNoOwner
	}
	q := s.db.WithContext(ctx).Where("owner = ?", owner)
	if completedOnly {
		q = q.Where("completed = ?", true)
	}
	res := q.Delete(&Todo{})
	return res.RowsAffected, wrap("delete all", res.Error)
}

// normalize puts t's times in UTC: PostgreSQL hands them back in the
// server's local zone.
func normalize(t Todo) Todo {
	t.CreatedAt = t.CreatedAt.UTC()
	t.UpdatedAt = t.UpdatedAt.UTC()
	return t
}

// wrap maps GORM's errors to this package's and names the operation; it
// keeps nil and the package's own sentinels as they are.
func wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gorm.ErrRecordNotFound):
		return ErrNotFound
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrPreconditionFailed), errors.Is(err, ErrLimit):
		return err
	}
	return fmt.Errorf("todos: %s: %w", op, err)
}
