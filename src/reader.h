/*
 * reader.h
 *		The worker's read of new events into delivery_state rows (reader.c).
 */
#ifndef WEBHOOK_READER_H
#define WEBHOOK_READER_H

extern int	reader_read_events(int page, bool *ordered, bool *more);

#endif							/* WEBHOOK_READER_H */
