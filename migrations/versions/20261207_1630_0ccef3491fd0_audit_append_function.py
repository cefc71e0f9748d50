"""The audit chain's append as one call on PostgreSQL (issue 19): take the chain's lock, read
the head, hash and insert the event, in one round trip, so that while the lock is held the
request sends that call and its commit and nothing else. SQLite needs none: its writers
already run one at a time.

The hash is SHA-256 over the previous hash, a newline and the event's canonical JSON, whose
last member is its sequence number (``tracker.audit.chain``): the caller sends the JSON up to
that number, the function adds the number it takes and the closing brace. It returns the
sequence number, the previous hash, the hash and how long it waited for the lock.

Revision ID: 0ccef3491fd0
Revises: 7e994efc4507
Create Date: 2026-12-07 16:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0ccef3491fd0"
down_revision = "7e994efc4507"
branch_labels = None
depends_on = None

SIGNATURE = (
    "bigint, text, timestamptz, integer, varchar, varchar, varchar, varchar, varchar, json, "
    "json, text, varchar"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION audit_append(
            lock_key bigint,
            content_before_seq text,
            event_occurred_at timestamptz,
            event_actor_id integer,
            event_actor varchar,
            event_role varchar,
            event_action varchar,
            event_entity_type varchar,
            event_entity_id varchar,
            event_old_values json,
            event_new_values json,
            event_reason text,
            event_ip_address varchar
        ) RETURNS TABLE (seq bigint, prev_hash varchar, hash varchar, lock_wait double precision)
        LANGUAGE plpgsql VOLATILE AS $$
        DECLARE
            asked timestamptz := clock_timestamp();
            waited double precision;
            last_seq bigint;
            last_hash varchar;
            next_seq bigint;
            next_hash varchar;
        BEGIN
            PERFORM pg_advisory_xact_lock(lock_key);
            waited := extract(epoch FROM clock_timestamp() - asked);
            -- A new statement, so a new snapshot (READ COMMITTED): the head committed by
            -- whoever held the lock before is seen.
            SELECT e.seq, e.hash INTO last_seq, last_hash
              FROM audit_events e ORDER BY e.seq DESC LIMIT 1;
            IF last_seq IS NULL THEN
                last_seq := 0;
                last_hash := repeat('0', 64);
            END IF;
            next_seq := last_seq + 1;
            next_hash := encode(sha256(convert_to(
                last_hash || chr(10) || content_before_seq || next_seq::text || '}', 'UTF8'
            )), 'hex');
            INSERT INTO audit_events (
                seq, occurred_at, actor_id, actor, role, action, entity_type, entity_id,
                old_values, new_values, reason, ip_address, prev_hash, hash
            ) VALUES (
                next_seq, event_occurred_at, event_actor_id, event_actor, event_role,
                event_action, event_entity_type, event_entity_id, event_old_values,
                event_new_values, event_reason, event_ip_address, last_hash, next_hash
            );
            RETURN QUERY SELECT next_seq, last_hash, next_hash, waited;
        END $$
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP FUNCTION IF EXISTS audit_append({SIGNATURE})")
