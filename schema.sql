CREATE TABLE IF NOT EXISTS "session" (
  session_key char(64) NOT NULL,
  session_data bytea,
  session_expiry timestamp NOT NULL,
  CONSTRAINT "session_key" PRIMARY KEY (session_key)
);

CREATE INDEX IF NOT EXISTS "session_expiry_idx" ON "session" (session_expiry);

-- Optional, for listing a user's sessions and signing them out everywhere. Tables without these
-- columns work for everything else; `pgsession migrate` adds them to an existing table.
ALTER TABLE "session" ADD COLUMN IF NOT EXISTS session_user_id text, ADD COLUMN IF NOT EXISTS session_label text;

CREATE INDEX IF NOT EXISTS "session_user_idx" ON "session" (session_user_id) WHERE session_user_id IS NOT NULL;
