/* list.h -- intrusive circular doubly-linked lists (header only).
 *
 * A struct cg_list is embedded in the element; the list head is a struct cg_list
 * whose next/prev point to itself when empty. Removing an element that is not on
 * a list (initialised and unlinked) is a no-op, so teardown paths need no flags. */
#ifndef CG_LIST_H
#define CG_LIST_H

#include <stddef.h>

struct cg_list {
    struct cg_list *next;
    struct cg_list *prev;
};

#define CG_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static inline void cg_list_init(struct cg_list *l)
{
    l->next = l;
    l->prev = l;
}

static inline int cg_list_empty(const struct cg_list *l)
{
    return l->next == l;
}

/* Appends e at the tail of head. e must not be on a list. */
static inline void cg_list_append(struct cg_list *head, struct cg_list *e)
{
    e->prev = head->prev;
    e->next = head;
    head->prev->next = e;
    head->prev = e;
}

/* Unlinks e (if linked) and leaves it initialised. */
static inline void cg_list_remove(struct cg_list *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
    cg_list_init(e);
}

/* Iterates safely against removal of the current element. */
#define CG_LIST_FOREACH_SAFE(it, tmp, head)                                                        \
    for ((it) = (head)->next, (tmp) = (it)->next; (it) != (head); (it) = (tmp), (tmp) = (it)->next)

#endif
