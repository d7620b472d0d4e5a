-- W1/W2 in PostgreSQL, the traditional architecture: an events table and an AFTER INSERT
-- trigger that maintains the view table in the writer's transaction. The trigger splits
-- the sentence into words the way the wordcount module does (runs of ASCII letters and
-- digits, lower-cased) and counts each one. A multi-row INSERT must insert its rows in one
-- order (w1_batched.pgb sorts them): the trigger locks counts rows in insertion order, and
-- two transactions locking words in opposite orders deadlock.
CREATE TABLE sentences (id bigserial PRIMARY KEY, body text NOT NULL);
CREATE TABLE counts (word text PRIMARY KEY, n bigint NOT NULL);

CREATE FUNCTION count_words() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO counts (word, n)
    SELECT w, count(*) FROM regexp_split_to_table(lower(NEW.body), '[^a-z0-9]+') AS w
    WHERE w <> '' GROUP BY w
  ON CONFLICT (word) DO UPDATE SET n = counts.n + EXCLUDED.n;
  RETURN NULL;
END $$;

CREATE TRIGGER sentences_count AFTER INSERT ON sentences
  FOR EACH ROW EXECUTE FUNCTION count_words();
