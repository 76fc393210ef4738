"""Evidence that outlives the gateway's own word: recipients' signed acknowledgements of
reception (``ack``), the witness's side of cosigned checkpoints (``witness``) and the
offline evidence bundle of one letter (``bundle``). Pure: bytes, keys and a clock in. See
docs/evidence.md."""
