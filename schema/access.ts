import { Field, ID, ObjectType, registerEnumType } from 'type-graphql';
import { GraphQLJSONObject } from 'graphql-scalars';

export enum RoleEnum {
  admin = 'admin',
  viewer = 'viewer',
  inference = 'inference',
}
registerEnumType(RoleEnum, {
  name: 'Role',
  description: 'admin: everything; viewer: control-plane queries; inference: the data plane.',
});

@ObjectType()
export class ApiToken {
  @Field(() => ID) id!: string;
  @Field() name!: string;
  @Field(() => RoleEnum) role!: RoleEnum;
  @Field() createdAt!: Date;
  @Field(() => Date, { nullable: true }) lastUsedAt!: Date | null;
  @Field(() => Date, { nullable: true }) revokedAt!: Date | null;
}

@ObjectType()
export class CreatedApiToken {
  @Field({ description: 'The bearer token. Shown only now; only its hash is stored.' }) token!: string;
  @Field(() => ApiToken) info!: ApiToken;
}

@ObjectType()
export class AuditEntry {
  @Field(() => ID) id!: number;
  @Field() actor!: string;
  @Field() action!: string;
  @Field() subjectType!: string;
  @Field() subjectId!: string;
  @Field(() => GraphQLJSONObject) details!: Record<string, unknown>;
  @Field() createdAt!: Date;
}
