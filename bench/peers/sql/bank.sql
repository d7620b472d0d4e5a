-- W4 in PostgreSQL: a transfers events table and an AFTER INSERT trigger that debits the
-- source and credits the destination in the writer's transaction, or records a
-- rejection when the balance does not cover the amount. Both rows are locked in id order,
-- so concurrent transfers cannot deadlock.
CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0));
CREATE TABLE transfers (id bigserial PRIMARY KEY, src int NOT NULL, dst int NOT NULL,
                        amount bigint NOT NULL);
CREATE TABLE rejected (transfer_id bigint PRIMARY KEY, reason text NOT NULL);

CREATE FUNCTION apply_transfer() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  source_balance bigint;
BEGIN
  PERFORM 1 FROM accounts WHERE id IN (NEW.src, NEW.dst) ORDER BY id FOR UPDATE;
  SELECT balance INTO source_balance FROM accounts WHERE id = NEW.src;
  IF source_balance < NEW.amount THEN
    INSERT INTO rejected (transfer_id, reason) VALUES (NEW.id, 'insufficient funds');
    RETURN NULL;
  END IF;
  UPDATE accounts SET balance = balance - NEW.amount WHERE id = NEW.src;
  UPDATE accounts SET balance = balance + NEW.amount WHERE id = NEW.dst;
  RETURN NULL;
END $$;

CREATE TRIGGER transfers_apply AFTER INSERT ON transfers
  FOR EACH ROW EXECUTE FUNCTION apply_transfer();
