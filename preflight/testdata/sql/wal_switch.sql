-- Some WAL, then a segment switch: the archiver archives the segment.
CREATE TABLE wal_filler AS SELECT g FROM generate_series(1, 1000) g;
SELECT pg_switch_wal();
