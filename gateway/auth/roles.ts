export const ROLES = ['admin', 'viewer', 'inference'] as const;
export type Role = (typeof ROLES)[number];

/** Who is calling, as established from the bearer token. */
export interface Principal {
  tokenId: string | null;
  name: string;
  role: Role;
}

/**
 * admin may do everything; viewer reads the control plane; inference calls the data plane.
 * Viewer and inference are disjoint so a leaked serving token cannot read the registry.
 */
export function roleAllows(role: Role, required: Role): boolean {
  return role === 'admin' || role === required;
}

export function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}
