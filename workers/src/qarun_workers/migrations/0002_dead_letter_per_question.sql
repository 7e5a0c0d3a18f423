-- One dead letter per question (qarun_core.messages.letter_identity): a crash between
-- a letter's publication and its offset's commit publishes it again, and a question
-- re-asked after a crash can fail twice. The latest letter of a question is kept;
-- a letter without a question id (an unreadable payload without a key) stays keyed by
-- where it was read.
DELETE FROM dead_letters d
USING dead_letters newer
WHERE d.question_id <> '' AND newer.run = d.run AND newer.question_id = d.question_id
  AND (newer.created_at, newer.source_topic, newer.source_partition, newer.source_offset)
    > (d.created_at, d.source_topic, d.source_partition, d.source_offset);

ALTER TABLE dead_letters DROP CONSTRAINT dead_letters_pkey;
CREATE UNIQUE INDEX dead_letters_question ON dead_letters (run, question_id)
    WHERE question_id <> '';
CREATE UNIQUE INDEX dead_letters_message
    ON dead_letters (run, source_topic, source_partition, source_offset)
    WHERE question_id = '';
