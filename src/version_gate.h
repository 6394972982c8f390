/*
 * version_gate.h
 *		Whether this database has the extension at the version this library
 *		was built for, cached by the worker until the extension changes
 *		(version_gate.c).
 */
#ifndef WEBHOOK_VERSION_GATE_H
#define WEBHOOK_VERSION_GATE_H

typedef enum ExtensionState
{
	EXTENSION_READY,			/* installed at WEBHOOK_EXTVERSION */
	EXTENSION_MISSING,			/* not installed (or dropped) */
	EXTENSION_OTHER_VERSION		/* installed, but not updated to ours */
} ExtensionState;

extern void version_gate_init(void);
extern ExtensionState version_gate_check(void);
extern const char *version_gate_installed(void);

#endif							/* WEBHOOK_VERSION_GATE_H */
