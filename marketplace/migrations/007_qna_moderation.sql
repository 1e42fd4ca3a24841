-- Q&A moderation: verdicts and the failure path's bookkeeping on questions and answers, the vehicle of an
-- answer (so its change event can be routed to the vehicle's document), and the audit of every decision.

ALTER TABLE questions
    ADD COLUMN updated_at    timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN reason        text,                                -- shown to the author
    ADD COLUMN review_reason text,                                -- why a human should look (queue filter)
    ADD COLUMN flagged       boolean NOT NULL DEFAULT false,      -- in the moderators' queue
    ADD COLUMN redactions    text[] NOT NULL DEFAULT '{}',        -- entity types replaced by placeholders
    ADD COLUMN scores        jsonb,
    ADD COLUMN attempts      integer NOT NULL DEFAULT 0,          -- failed automatic attempts
    ADD COLUMN last_error    text,
    ADD COLUMN moderated_at  timestamptz,
    ADD COLUMN moderated_by  bigint REFERENCES users (id);        -- NULL: the models decided

ALTER TABLE answers
    ADD COLUMN vehicle_id    bigint REFERENCES vehicles (id),
    ADD COLUMN updated_at    timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN reason        text,
    ADD COLUMN review_reason text,
    ADD COLUMN flagged       boolean NOT NULL DEFAULT false,
    ADD COLUMN redactions    text[] NOT NULL DEFAULT '{}',
    ADD COLUMN scores        jsonb,
    ADD COLUMN attempts      integer NOT NULL DEFAULT 0,
    ADD COLUMN last_error    text,
    ADD COLUMN moderated_at  timestamptz,
    ADD COLUMN moderated_by  bigint REFERENCES users (id);

UPDATE answers a SET vehicle_id = q.vehicle_id FROM questions q WHERE q.id = a.question_id;
ALTER TABLE answers ALTER COLUMN vehicle_id SET NOT NULL;

-- An answer's vehicle is its question's; filled here so bulk loads (COPY) get it too.
CREATE FUNCTION answers_set_vehicle() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT vehicle_id INTO NEW.vehicle_id FROM questions WHERE id = NEW.question_id;
    RETURN NEW;
END;
$$;
CREATE TRIGGER answers_set_vehicle BEFORE INSERT ON answers FOR EACH ROW EXECUTE FUNCTION answers_set_vehicle();

CREATE INDEX questions_vehicle_idx ON questions (vehicle_id);
CREATE INDEX answers_question_idx ON answers (question_id);
CREATE INDEX questions_flagged_idx ON questions (created_at) WHERE flagged;
CREATE INDEX answers_flagged_idx ON answers (created_at) WHERE flagged;

-- Every decision on an item, by the models (actor_id NULL) or a moderator: who, when, before and after.
CREATE TABLE moderation_audit (
    id         bigserial PRIMARY KEY,
    item_kind  text NOT NULL CHECK (item_kind IN ('question', 'answer')),
    item_id    bigint NOT NULL,
    actor_id   bigint REFERENCES users (id),
    action     text NOT NULL,
    note       text,
    before     jsonb NOT NULL,
    after      jsonb NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX moderation_audit_item_idx ON moderation_audit (item_kind, item_id, id);

-- A deleted question or answer's change event carries its whole row, so its vehicle's document can drop it.
ALTER TABLE questions REPLICA IDENTITY FULL;
ALTER TABLE answers REPLICA IDENTITY FULL;
