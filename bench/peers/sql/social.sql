-- W3 in PostgreSQL: fan-out on write. A post is stored under its author and an AFTER
-- INSERT trigger delivers it to the timeline of every follower, in the writer's
-- transaction. The follow graph is the one strata-bench builds (bench/loadgen/workloads.h,
-- FollowerCounts): user r has the count of the fcounts table, its followers are users
-- ((r - 1 + j) mod :users) + 1 for j = 1..count. Unlike the social module, the timelines
-- are not capped at 800 entries (a short run never reaches the cap).
CREATE TABLE follows (followee int NOT NULL, follower int NOT NULL, PRIMARY KEY (followee, follower));
CREATE TABLE posts (id bigserial PRIMARY KEY, author int NOT NULL, body text NOT NULL);
CREATE TABLE timelines (owner int NOT NULL, post_id bigint NOT NULL, author int NOT NULL,
                        PRIMARY KEY (owner, post_id));

CREATE FUNCTION fan_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO timelines (owner, post_id, author)
    SELECT follower, NEW.id, NEW.author FROM follows WHERE followee = NEW.author;
  RETURN NULL;
END $$;

CREATE TRIGGER posts_fan_out AFTER INSERT ON posts FOR EACH ROW EXECUTE FUNCTION fan_out();
